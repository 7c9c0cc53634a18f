# gx_podres: the kubelet's PodResources client (gRPC on nghttp2 + protobuf-c; see podres.c for
# why not libgrpc). Included from src/CMakeLists.txt.
#
# The protobuf-c code for podresources.proto is generated at build time into the build tree,
# under gen/ rather than src/, so tests/tidy.sh (which checks src/) and .clang-tidy's header
# filter leave the generated files alone.
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2>=1.43)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c>=1.3)
find_program(GX_PROTOC_C protoc-c REQUIRED)

set(podres_gen_dir ${PROJECT_BINARY_DIR}/gen/podres)
set(podres_proto ${CMAKE_CURRENT_LIST_DIR}/podresources.proto)
add_custom_command(
  OUTPUT ${podres_gen_dir}/podresources.pb-c.c ${podres_gen_dir}/podresources.pb-c.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${podres_gen_dir}
  COMMAND ${GX_PROTOC_C} --c_out=${podres_gen_dir} -I${CMAKE_CURRENT_LIST_DIR} ${podres_proto}
  DEPENDS ${podres_proto}
  COMMENT "protoc-c podresources.proto"
  VERBATIM)

gx_module(podres DEPS gx_base LIBS PkgConfig::NGHTTP2 PkgConfig::PROTOBUFC)
target_sources(gx_podres PRIVATE ${podres_gen_dir}/podresources.pb-c.c)
# protoc-c's initializers cast protobuf_c_empty_string (const) to char *: its only warning.
set_source_files_properties(${podres_gen_dir}/podresources.pb-c.c PROPERTIES
                            COMPILE_OPTIONS -Wno-cast-qual)
# SYSTEM: the generated header is not ours to keep warning-free under GX_WARNINGS.
target_include_directories(gx_podres SYSTEM PRIVATE ${podres_gen_dir})
target_link_libraries(gx_core INTERFACE gx_podres)
