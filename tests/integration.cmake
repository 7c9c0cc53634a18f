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

# One Python integration test, integration_<name>: python3 -u tests/integration/<name's
# script> [ARGS...] -v, labelled "integration" (and LABELS), with the common environment plus
# ENV, each FILES entry and the script itself required, and SKIPPABLE tests reported as skipped
# when they exit 77 (a missing real control plane).
#
#   gx_py_test(<name> <script> TIMEOUT <s> [PROCESSORS <n>] [SKIPPABLE] [ARGS <a>...]
#              [LABELS <l>...] [ENV <k=v>...] [FILES <path>...])
function(gx_py_test name script)
  cmake_parse_arguments(T "SKIPPABLE" "TIMEOUT;PROCESSORS" "ARGS;LABELS;ENV;FILES" ${ARGN})
  set(path ${CMAKE_CURRENT_SOURCE_DIR}/integration/${script})
  add_test(NAME integration_${name} COMMAND ${GX_PYTHON3_EXECUTABLE} -u ${path} ${T_ARGS} -v)
  set(env ${GX_INTEGRATION_ENV} ${T_ENV})
  set(files ${T_FILES} ${path})
  list(REMOVE_DUPLICATES files)
  set(labels integration ${T_LABELS})
  set_tests_properties(integration_${name} PROPERTIES
    LABELS "${labels}"
    TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "${env}"
    REQUIRED_FILES "${files}")
  if(T_PROCESSORS)
    set_tests_properties(integration_${name} PROPERTIES PROCESSORS ${T_PROCESSORS})
  endif()
  if(T_SKIPPABLE)
    set_tests_properties(integration_${name} PROPERTIES SKIP_RETURN_CODE 77)
  endif()
endfunction()

set(GX_BIN_ENV "GX_BIN=$<TARGET_FILE:gpu-extender>")
set(GX_AGENT_ENV "GX_AGENT_BIN=$<TARGET_FILE:gpu-extender-agent>"
    "FAKE_NVML_LIB=$<TARGET_FILE:fake_nvml>" "GX_GRPC_PYTHON3=${gx_grpc_python3}")
set(GX_SIM_FILES ${CMAKE_CURRENT_SOURCE_DIR}/integration/sched_sim.py
    ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_churn.py
    ${CMAKE_CURRENT_SOURCE_DIR}/fake_apiserver.py)
set(GX_DAEMON_PROC ${CMAKE_CURRENT_SOURCE_DIR}/integration/daemon_proc.py)
set(GX_E2E_HARNESS ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_preempt_e2e.py)
set(GX_SCARCITY_POLICY ${CMAKE_SOURCE_DIR}/policy/examples/scarcity.yaml)

# Churn, bind races and restart (tests/integration/README.md): a kube-scheduler simulator
# against the daemon and the fake API server, checking for over-allocation and that the
# cache converges to the truth after every step.
gx_py_test(churn test_churn.py ARGS ChurnTest TIMEOUT 300 PROCESSORS 2
           ENV ${GX_BIN_ENV} FILES ${GX_SIM_FILES})
gx_py_test(bind_races test_churn.py ARGS BindRaceTest TIMEOUT 90
           ENV ${GX_BIN_ENV} FILES ${GX_SIM_FILES})
gx_py_test(restart test_restart.py TIMEOUT 180 ENV ${GX_BIN_ENV} FILES ${GX_SIM_FILES})

# Policy steering (tests/integration/README.md): rules, classes and preferences followed by
# pods the simulator schedules, and a hot reload of the policy file without a restart.
gx_py_test(policy_steering test_policy_steering.py TIMEOUT 90
           ENV ${GX_BIN_ENV} FILES ${GX_SIM_FILES})

# Scarcity steering (tests/integration/README.md): the scarcity part from the demand the watch
# feeds, bound pods' requirements read back from the Binding's annotations, a restart, and the
# same cluster with the weight at 0 after a hot reload.
gx_py_test(scarcity_steering test_scarcity_steering.py TIMEOUT 90
           ENV ${GX_BIN_ENV} FILES ${GX_SIM_FILES} ${GX_SCARCITY_POLICY})

# Preemption (tests/integration/test_preempt_sim.py): the simulator as kube-scheduler 1.28 with
# ignoredByScheduler: false and preemptVerb: preempt, DefaultPreemption and a kubelet; the issue's
# scenario in both nodeCacheCapable modes, an NVLink quad evicted whole, a PDB respected, churn
# with no pointless eviction, preemptionPolicy: Never.
gx_py_test(preempt_sim test_preempt_sim.py TIMEOUT 120 ENV ${GX_BIN_ENV} FILES ${GX_SIM_FILES})

# Hardening (tests/integration/test_hardening.py): deadlines, connection limits, the memory
# budget, recovery after a flood, and the operations listener, against the real daemon.
gx_py_test(hardening test_hardening.py TIMEOUT 180 FILES ${GX_DAEMON_PROC})

# Soak (tests/integration/test_soak.py): about a minute of churn with API server outages,
# watch drops, relists and policy reloads, under a flood of idle and slow connections on
# both listeners; every scheduler call must be answered in time and the daemon must come
# back to its baseline of descriptors and memory.
gx_py_test(soak test_soak.py TIMEOUT 300 PROCESSORS 2 LABELS soak
           ENV ${GX_BIN_ENV} "GX_SANITIZED=$<BOOL:${GX_SANITIZE}>" FILES ${GX_SIM_FILES})

# HTTPS (tests/integration/test_tls.py): client certificates (trusted, missing, another CA's,
# wrong purpose), plain HTTP and TLS 1.1 refused, and certificate rotation through a Secret
# volume's symlink swap while clients keep connecting, with an invalid replacement refused.
gx_py_test(tls test_tls.py TIMEOUT 120
           FILES ${CMAKE_CURRENT_SOURCE_DIR}/gen_certs.sh ${GX_DAEMON_PROC})

# Preemption end to end (tests/integration/test_preempt_e2e.py): a real kube-apiserver and
# kube-scheduler from the loopback harness beside the checkout (../shared/harness), the daemon
# as their extender with the preempt verb, and two scenarios (count only; an NVLink quad chosen
# by policy). It needs K8S_BIN (kube-apiserver, kube-scheduler) and etcd, which CI lacks: then
# it exits 77 and ctest reports it as skipped, saying why. About 40 s when it runs.
gx_py_test(preempt_e2e test_preempt_e2e.py TIMEOUT 240 PROCESSORS 2 SKIPPABLE)

# The node agent end to end (tests/integration/test_agent_e2e.py): gpu-extender-agent with the
# fake NVML library and the fake kubelet, publishing through the fake API server that
# gpu-extender watches: topology, GPUs in use, an XID, an outage, a rotated token, a restart,
# the patch counts, and the dry-run modes.
#
# The node agent against a real kube-apiserver and kube-scheduler (tests/integration/
# test_agent_k8s.py, harness code from test_preempt_e2e.py): the real merge patch, gpu-extender
# reading it, an XID, and a pod kube-scheduler binds through gpu-extender avoiding that GPU.
# Skipped (77) without K8S_BIN, as integration_preempt_e2e is.
if(TARGET gpu-extender-agent AND TARGET fake_nvml)
  gx_py_test(agent_e2e test_agent_e2e.py TIMEOUT 180 ENV ${GX_BIN_ENV} ${GX_AGENT_ENV}
             FILES ${GX_SIM_FILES} ${CMAKE_CURRENT_SOURCE_DIR}/fakes/fake_kubelet.py)
  gx_py_test(agent_k8s test_agent_k8s.py TIMEOUT 240 PROCESSORS 2 SKIPPABLE
             ENV ${GX_AGENT_ENV} FILES ${GX_E2E_HARNESS})
endif()

# The scarcity part against a real kube-apiserver and kube-scheduler (tests/integration/
# test_scarcity_k8s.py, harness code from test_preempt_e2e.py): the Binding's records merged by
# the real API server and read back by the watch, flexible pods kept off the T4 node the
# constrained ones need, and binpack's choice again with the weight at 0. Skipped (77) without
# K8S_BIN, as integration_preempt_e2e is.
gx_py_test(scarcity_k8s test_scarcity_k8s.py TIMEOUT 240 PROCESSORS 2 SKIPPABLE
           FILES ${GX_SIM_FILES} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_scarcity_steering.py
                 ${GX_E2E_HARNESS} ${GX_SCARCITY_POLICY})
