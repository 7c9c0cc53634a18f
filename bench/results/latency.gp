set terminal pngcairo size 1000,640 font 'DejaVu Sans,10'
set output 'bench/results/latency.png'
set title "gpu-extender vs Go baseline: median round-trip latency over loopback (1 keep-alive connection)\nAMD EPYC, 2 cores, commit df1dea4-dirty"
set logscale xy
set xlabel 'nodes in the request'
set ylabel 'latency p50 (ms, log scale)'
set grid xtics ytics mytics
set key top left
set xrange [80:20000]
set format y '%g'
plot 'bench/results/plot-0.dat' using 1:2 with linespoints lw 2 pt 5 title 'gpu-extender, full Nodes, filter', \
     'bench/results/plot-1.dat' using 1:2 with linespoints lw 2 pt 6 title 'Go baseline, full Nodes, filter', \
     'bench/results/plot-2.dat' using 1:2 with linespoints lw 2 pt 7 title 'gpu-extender, full Nodes, prioritize', \
     'bench/results/plot-3.dat' using 1:2 with linespoints lw 2 pt 8 dt 2 title 'loopback floor, same full body', \
     'bench/results/plot-4.dat' using 1:2 with linespoints lw 2 pt 9 title 'gpu-extender, NodeNames, filter', \
     'bench/results/plot-5.dat' using 1:2 with linespoints lw 2 pt 10 title 'gpu-extender, NodeNames, prioritize', \
     'bench/results/plot-6.dat' using 1:2 with linespoints lw 2 pt 11 dt 2 title 'loopback floor, same NodeNames body'
