# The node agent (gpu-extender-agent): NVML through dlopen() (nvml.c), the annotations and
# labels it publishes (gpu_facts.c), and the agent's loop. dl: dlopen() for NVML, which is
# never linked at build time.
gx_module(agent DEPS gx_kube gx_state gx_config gx_base LIBS ${CMAKE_DL_LIBS})
target_link_libraries(gx_core INTERFACE gx_agent)
