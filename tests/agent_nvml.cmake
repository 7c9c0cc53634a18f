# The NVML test double (tests/fakes/fake_nvml.c, fixtures in tests/fakes/nvml/) and what
# test_nvml needs to find it.
#   fake_nvml      a current driver
#   fake_nvml_old  a driver without nvmlDeviceGetNvLinkRemoteDeviceType, nvmlDeviceGetMigMode
#                  and nvmlDeviceGetMemoryAffinity
# Both build with the project's flags, sanitizers included (Sanitizers.cmake adds them to every
# target), so an ASan test loads them cleanly.
foreach(fake fake_nvml fake_nvml_old)
  add_library(${fake} SHARED ${CMAKE_CURRENT_SOURCE_DIR}/fakes/fake_nvml.c)
  gx_target_defaults(${fake})
  target_include_directories(${fake} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  # Release builds link programs with -pie (Sanitizers.cmake); that is no flag for a library.
  get_target_property(fake_link_options ${fake} LINK_OPTIONS)
  if(fake_link_options)
    list(REMOVE_ITEM fake_link_options -pie)
    set_target_properties(${fake} PROPERTIES LINK_OPTIONS "${fake_link_options}")
  endif()
endforeach()
target_compile_definitions(fake_nvml_old PRIVATE FAKE_NVML_OLD_DRIVER)

if(TARGET test_nvml)
  add_dependencies(test_nvml fake_nvml fake_nvml_old)
  # Appended to what tests/CMakeLists.txt sets (GX_FIXTURES, GX_SOURCE_DIR).
  set_property(TEST test_nvml APPEND PROPERTY ENVIRONMENT
               "GX_FAKE_NVML=$<TARGET_FILE:fake_nvml>"
               "GX_FAKE_NVML_OLD=$<TARGET_FILE:fake_nvml_old>")
endif()
