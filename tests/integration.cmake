# Integration tests, included by tests/CMakeLists.txt: every tests/curl/test_<name>.sh is one
# ctest, integration_<name>, run with bash against the real daemon binary; the fake API
# server's self-test (tests/test_fake_apiserver.py) is another. Label "integration":
#
#   ctest --test-dir build -L integration --output-on-failure
#
# They need only bash, curl, python3 (standard library) and openssl, and talk to 127.0.0.1
# on ports the kernel picks, so they may run in parallel (ctest -j).

find_program(GX_BASH_EXECUTABLE bash)
find_program(GX_CURL_EXECUTABLE curl)
find_program(GX_PYTHON3_EXECUTABLE python3)

if(NOT GX_BASH_EXECUTABLE OR NOT GX_CURL_EXECUTABLE OR NOT GX_PYTHON3_EXECUTABLE)
  # Registered anyway, so that a missing tool is a failing test rather than a silent gap.
  message(WARNING "integration tests need bash, curl and python3 "
                  "(found: '${GX_BASH_EXECUTABLE}' '${GX_CURL_EXECUTABLE}' '${GX_PYTHON3_EXECUTABLE}')")
endif()
if(NOT GX_BASH_EXECUTABLE)
  set(GX_BASH_EXECUTABLE bash)
endif()
if(NOT GX_PYTHON3_EXECUTABLE)
  set(GX_PYTHON3_EXECUTABLE python3)
endif()

set(GX_INTEGRATION_ENV
    "GX_DAEMON=$<TARGET_FILE:gpu-extender>"
    "GX_FIXTURES=${GX_FIXTURES}"
    "GX_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
    "KUBE_FIXTURES=${GX_FIXTURES}/apiserver")

# Seconds each script may take (they finish well inside these under ASan on 2 cores; the
# margin is for a loaded CI machine running ctest -j: bad_input and bind take about a minute
# alone, and up to two when clang-tidy or a soak shares the cores).
set(GX_INTEGRATION_TIMEOUT_test_verbs 90)
set(GX_INTEGRATION_TIMEOUT_test_bad_input 300)
set(GX_INTEGRATION_TIMEOUT_test_bind 300)
set(GX_INTEGRATION_TIMEOUT_test_shutdown 90)

file(GLOB GX_CURL_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/curl/test_*.sh)
foreach(script ${GX_CURL_TESTS})
  get_filename_component(name ${script} NAME_WE)
  set(timeout ${GX_INTEGRATION_TIMEOUT_${name}})
  if(NOT timeout)
    set(timeout 120)
  endif()
  add_test(NAME integration_${name} COMMAND ${GX_BASH_EXECUTABLE} ${script})
  set_tests_properties(integration_${name} PROPERTIES
    LABELS integration
    TIMEOUT ${timeout}
    ENVIRONMENT "${GX_INTEGRATION_ENV}"
    REQUIRED_FILES "${script};${CMAKE_CURRENT_SOURCE_DIR}/curl/lib.sh")
endforeach()

if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_fake_apiserver.py)
  add_test(NAME integration_fake_apiserver
           COMMAND ${GX_PYTHON3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_fake_apiserver.py)
  set_tests_properties(integration_fake_apiserver PROPERTIES
    LABELS integration
    TIMEOUT 120
    ENVIRONMENT "${GX_INTEGRATION_ENV}")
endif()

# Churn, bind races and restart (tests/integration/README.md): a kube-scheduler simulator
# against the daemon and the fake API server, checking for over-allocation and that the
# cache converges to the truth after every step.
set(GX_PY_INTEGRATION_FILES
    "${CMAKE_CURRENT_SOURCE_DIR}/integration/sched_sim.py;${CMAKE_CURRENT_SOURCE_DIR}/integration/test_churn.py;${CMAKE_CURRENT_SOURCE_DIR}/fake_apiserver.py")
add_test(NAME integration_churn COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_churn.py ChurnTest -v)
add_test(NAME integration_bind_races COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_churn.py BindRaceTest -v)
add_test(NAME integration_restart COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_restart.py -v)
set_tests_properties(integration_churn integration_bind_races integration_restart PROPERTIES
  LABELS integration
  ENVIRONMENT "${GX_INTEGRATION_ENV};GX_BIN=$<TARGET_FILE:gpu-extender>"
  REQUIRED_FILES "${GX_PY_INTEGRATION_FILES}")
set_tests_properties(integration_churn PROPERTIES TIMEOUT 300 PROCESSORS 2)
set_tests_properties(integration_restart PROPERTIES TIMEOUT 180)
set_tests_properties(integration_bind_races PROPERTIES TIMEOUT 90)

# Policy steering (tests/integration/README.md): rules, classes and preferences followed by
# pods the simulator schedules, and a hot reload of the policy file without a restart.
add_test(NAME integration_policy_steering COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_policy_steering.py -v)
set_tests_properties(integration_policy_steering PROPERTIES
  LABELS integration
  TIMEOUT 90
  ENVIRONMENT "${GX_INTEGRATION_ENV};GX_BIN=$<TARGET_FILE:gpu-extender>"
  REQUIRED_FILES "${GX_PY_INTEGRATION_FILES};${CMAKE_CURRENT_SOURCE_DIR}/integration/test_policy_steering.py")

# Scarcity steering (tests/integration/README.md): the scarcity part from the demand the watch
# feeds, bound pods' requirements read back from the Binding's annotations, a restart, and the
# same cluster with the weight at 0 after a hot reload.
add_test(NAME integration_scarcity_steering COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_scarcity_steering.py -v)
set_tests_properties(integration_scarcity_steering PROPERTIES
  LABELS integration
  TIMEOUT 90
  ENVIRONMENT "${GX_INTEGRATION_ENV};GX_BIN=$<TARGET_FILE:gpu-extender>"
  REQUIRED_FILES "${GX_PY_INTEGRATION_FILES};${CMAKE_CURRENT_SOURCE_DIR}/integration/test_scarcity_steering.py;${CMAKE_SOURCE_DIR}/policy/examples/scarcity.yaml")

# Preemption (tests/integration/test_preempt_sim.py): the simulator as kube-scheduler 1.28 with
# ignoredByScheduler: false and preemptVerb: preempt, DefaultPreemption and a kubelet; the issue's
# scenario in both nodeCacheCapable modes, an NVLink quad evicted whole, a PDB respected, churn
# with no pointless eviction, preemptionPolicy: Never.
add_test(NAME integration_preempt_sim COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_preempt_sim.py -v)
set_tests_properties(integration_preempt_sim PROPERTIES
  LABELS integration
  TIMEOUT 120
  ENVIRONMENT "${GX_INTEGRATION_ENV};GX_BIN=$<TARGET_FILE:gpu-extender>"
  REQUIRED_FILES "${GX_PY_INTEGRATION_FILES};${CMAKE_CURRENT_SOURCE_DIR}/integration/test_preempt_sim.py")

# Hardening (tests/integration/test_hardening.py): deadlines, connection limits, the memory
# budget, recovery after a flood, and the operations listener, against the real daemon.
add_test(NAME integration_hardening COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_hardening.py -v)
set_tests_properties(integration_hardening PROPERTIES
  LABELS integration
  TIMEOUT 180
  ENVIRONMENT "${GX_INTEGRATION_ENV}"
  REQUIRED_FILES "${CMAKE_CURRENT_SOURCE_DIR}/integration/test_hardening.py;${CMAKE_CURRENT_SOURCE_DIR}/integration/daemon_proc.py")

# Soak (tests/integration/test_soak.py): about a minute of churn with API server outages,
# watch drops, relists and policy reloads, under a flood of idle and slow connections on
# both listeners; every scheduler call must be answered in time and the daemon must come
# back to its baseline of descriptors and memory.
add_test(NAME integration_soak COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_soak.py -v)
set_tests_properties(integration_soak PROPERTIES
  LABELS "integration;soak"
  TIMEOUT 300
  PROCESSORS 2
  ENVIRONMENT "${GX_INTEGRATION_ENV};GX_BIN=$<TARGET_FILE:gpu-extender>;GX_SANITIZED=$<BOOL:${GX_SANITIZE}>"
  REQUIRED_FILES "${GX_PY_INTEGRATION_FILES};${CMAKE_CURRENT_SOURCE_DIR}/integration/test_soak.py")

# HTTPS (tests/integration/test_tls.py): client certificates (trusted, missing, another CA's,
# wrong purpose), plain HTTP and TLS 1.1 refused, and certificate rotation through a Secret
# volume's symlink swap while clients keep connecting, with an invalid replacement refused.
add_test(NAME integration_tls COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_tls.py -v)
set_tests_properties(integration_tls PROPERTIES
  LABELS integration
  TIMEOUT 120
  ENVIRONMENT "${GX_INTEGRATION_ENV}"
  REQUIRED_FILES "${CMAKE_CURRENT_SOURCE_DIR}/integration/test_tls.py;${CMAKE_CURRENT_SOURCE_DIR}/gen_certs.sh;${CMAKE_CURRENT_SOURCE_DIR}/integration/daemon_proc.py")

# Preemption end to end (tests/integration/test_preempt_e2e.py): a real kube-apiserver and
# kube-scheduler from the loopback harness beside the checkout (../shared/harness), the daemon
# as their extender with the preempt verb, and two scenarios (count only; an NVLink quad chosen
# by policy). It needs K8S_BIN (kube-apiserver, kube-scheduler) and etcd, which CI lacks: then
# it exits 77 and ctest reports it as skipped, saying why. About 40 s when it runs.
add_test(NAME integration_preempt_e2e COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_preempt_e2e.py -v)
set_tests_properties(integration_preempt_e2e PROPERTIES
  LABELS integration
  TIMEOUT 240
  PROCESSORS 2
  SKIP_RETURN_CODE 77
  ENVIRONMENT "${GX_INTEGRATION_ENV}"
  REQUIRED_FILES "${CMAKE_CURRENT_SOURCE_DIR}/integration/test_preempt_e2e.py")

# The node agent end to end (tests/integration/test_agent_e2e.py): gpu-extender-agent with the
# fake NVML library and the fake kubelet, publishing through the fake API server that
# gpu-extender watches: topology, GPUs in use, an XID, an outage, a rotated token, a restart,
# the patch counts, and the dry-run modes.
if(TARGET gpu-extender-agent AND TARGET fake_nvml)
  add_test(NAME integration_agent_e2e COMMAND ${GX_PYTHON3_EXECUTABLE} -u
           ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_agent_e2e.py -v)
  set_tests_properties(integration_agent_e2e PROPERTIES
    LABELS integration
    TIMEOUT 180
    ENVIRONMENT "${GX_INTEGRATION_ENV};GX_BIN=$<TARGET_FILE:gpu-extender>;GX_AGENT_BIN=$<TARGET_FILE:gpu-extender-agent>;FAKE_NVML_LIB=$<TARGET_FILE:fake_nvml>;GX_GRPC_PYTHON3=${gx_grpc_python3}"
    REQUIRED_FILES "${GX_PY_INTEGRATION_FILES};${CMAKE_CURRENT_SOURCE_DIR}/integration/test_agent_e2e.py;${CMAKE_CURRENT_SOURCE_DIR}/fakes/fake_kubelet.py")
endif()

# The node agent against a real kube-apiserver and kube-scheduler (tests/integration/
# test_agent_k8s.py, harness code from test_preempt_e2e.py): the real merge patch, gpu-extender
# reading it, an XID, and a pod kube-scheduler binds through gpu-extender avoiding that GPU.
# Skipped (77) without K8S_BIN, as integration_preempt_e2e is.
if(TARGET gpu-extender-agent AND TARGET fake_nvml)
  add_test(NAME integration_agent_k8s COMMAND ${GX_PYTHON3_EXECUTABLE} -u
           ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_agent_k8s.py -v)
  set_tests_properties(integration_agent_k8s PROPERTIES
    LABELS integration
    TIMEOUT 240
    PROCESSORS 2
    SKIP_RETURN_CODE 77
    ENVIRONMENT "${GX_INTEGRATION_ENV};GX_AGENT_BIN=$<TARGET_FILE:gpu-extender-agent>;FAKE_NVML_LIB=$<TARGET_FILE:fake_nvml>;GX_GRPC_PYTHON3=${gx_grpc_python3}"
    REQUIRED_FILES "${CMAKE_CURRENT_SOURCE_DIR}/integration/test_agent_k8s.py;${CMAKE_CURRENT_SOURCE_DIR}/integration/test_preempt_e2e.py")
endif()

# The scarcity part against a real kube-apiserver and kube-scheduler (tests/integration/
# test_scarcity_k8s.py, harness code from test_preempt_e2e.py): the Binding's records merged by
# the real API server and read back by the watch, flexible pods kept off the T4 node the
# constrained ones need, and binpack's choice again with the weight at 0. Skipped (77) without
# K8S_BIN, as integration_preempt_e2e is.
add_test(NAME integration_scarcity_k8s COMMAND ${GX_PYTHON3_EXECUTABLE} -u
         ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_scarcity_k8s.py -v)
set_tests_properties(integration_scarcity_k8s PROPERTIES
  LABELS integration
  TIMEOUT 240
  PROCESSORS 2
  SKIP_RETURN_CODE 77
  ENVIRONMENT "${GX_INTEGRATION_ENV}"
  REQUIRED_FILES "${GX_PY_INTEGRATION_FILES};${CMAKE_CURRENT_SOURCE_DIR}/integration/test_scarcity_k8s.py;${CMAKE_CURRENT_SOURCE_DIR}/integration/test_scarcity_steering.py;${CMAKE_CURRENT_SOURCE_DIR}/integration/test_preempt_e2e.py;${CMAKE_SOURCE_DIR}/policy/examples/scarcity.yaml")
