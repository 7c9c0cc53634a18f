set terminal pngcairo size 1000,600
set key outside right
set grid
set output 'bench/results/sim/gpuspec33/allocation.png'
set title 'GPU allocation over time (replay)'
set xlabel 'days'
set ylabel '% of GPUs allocated'
plot 'bench/results/sim/gpuspec33/alloc.dat' index 0 with lines title 'random', 'bench/results/sim/gpuspec33/alloc.dat' index 1 with lines title 'first fit', 'bench/results/sim/gpuspec33/alloc.dat' index 2 with lines title 'best fit', 'bench/results/sim/gpuspec33/alloc.dat' index 3 with lines title 'worst fit', 'bench/results/sim/gpuspec33/alloc.dat' index 4 with lines title 'binpack', 'bench/results/sim/gpuspec33/alloc.dat' index 5 with lines title 'spread', 'bench/results/sim/gpuspec33/alloc.dat' index 6 with lines title 'binpack+scarcity'
set output 'bench/results/sim/gpuspec33/placed.png'
set title 'GPU demand placed as the cluster fills'
set xlabel 'GPUs asked (arrival order)'
set ylabel 'GPUs placed'
plot 'bench/results/sim/gpuspec33/placed.dat' index 0 with lines title 'random', 'bench/results/sim/gpuspec33/placed.dat' index 1 with lines title 'first fit', 'bench/results/sim/gpuspec33/placed.dat' index 2 with lines title 'best fit', 'bench/results/sim/gpuspec33/placed.dat' index 3 with lines title 'worst fit', 'bench/results/sim/gpuspec33/placed.dat' index 4 with lines title 'binpack', 'bench/results/sim/gpuspec33/placed.dat' index 5 with lines title 'spread', 'bench/results/sim/gpuspec33/placed.dat' index 6 with lines title 'binpack+scarcity'
set logscale x
set output 'bench/results/sim/gpuspec33/waits.png'
set title 'Waiting time, every pod placed (replay; CDF)'
set xlabel 'seconds waited (log scale; 0 drawn at 0.1)'
set ylabel '% of pods'
plot 'bench/results/sim/gpuspec33/waits.dat' index 0 with lines title 'random', 'bench/results/sim/gpuspec33/waits.dat' index 1 with lines title 'first fit', 'bench/results/sim/gpuspec33/waits.dat' index 2 with lines title 'best fit', 'bench/results/sim/gpuspec33/waits.dat' index 3 with lines title 'worst fit', 'bench/results/sim/gpuspec33/waits.dat' index 4 with lines title 'binpack', 'bench/results/sim/gpuspec33/waits.dat' index 5 with lines title 'spread', 'bench/results/sim/gpuspec33/waits.dat' index 6 with lines title 'binpack+scarcity'

