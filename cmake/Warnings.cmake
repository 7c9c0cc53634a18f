# The warning set every target of ours compiles with (STYLE.md 2.10).
set(GX_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wstrict-prototypes
    -Wmissing-prototypes -Wformat=2 -Wwrite-strings -Wcast-qual -Wvla -Wundef
    -Wimplicit-fallthrough)
if(GX_WERROR)
  list(APPEND GX_WARNINGS -Werror)
endif()

function(gx_target_defaults target)
  target_compile_options(${target} PRIVATE ${GX_WARNINGS})
  target_compile_definitions(${target} PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
  if(CMAKE_BUILD_TYPE STREQUAL "Release")
    target_compile_options(${target} PRIVATE -D_FORTIFY_SOURCE=2 -fstack-protector-strong)
  endif()
endfunction()
