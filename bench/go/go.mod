module gpu-extender/bench/go-baseline

go 1.19
