# The PodResources client's tests (tests/unit/test_podres*.c, globbed by tests/CMakeLists.txt)
# and what they need: test_podres runs tests/fakes/fake_kubelet.py, a real gRPC server, with
# a python3 that has grpcio (Debian: python3-grpcio, from scripts/deps.sh). A python3 earlier
# on PATH (pyenv, a virtualenv) may lack it while the system's has it, so the first of the two
# that imports grpc is used; -DGX_GRPC_PYTHON3=... picks one by hand. With none, the test still
# runs and fails, saying what is missing: a missing dependency is not a pass.
set(GX_GRPC_PYTHON3 "" CACHE FILEPATH "python3 with grpcio for tests/fakes/fake_kubelet.py (empty: search)")
set(gx_grpc_python3 ${GX_GRPC_PYTHON3})
if(NOT gx_grpc_python3)
  find_program(GX_PATH_PYTHON3 python3)
  foreach(candidate ${GX_PATH_PYTHON3} /usr/bin/python3)
    execute_process(COMMAND ${candidate} -c "import grpc" RESULT_VARIABLE rc
                    OUTPUT_QUIET ERROR_QUIET)
    if(rc EQUAL 0)
      set(gx_grpc_python3 ${candidate})
      break()
    endif()
  endforeach()
endif()
if(NOT gx_grpc_python3)
  message(WARNING "no python3 with grpcio (python3-grpcio, scripts/deps.sh): test_podres will fail")
  set(gx_grpc_python3 python3)
endif()
if(TEST test_podres)
  set_property(TEST test_podres APPEND PROPERTY ENVIRONMENT "GX_GRPC_PYTHON3=${gx_grpc_python3}")
endif()
