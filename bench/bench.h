/* bench.h - what every ferry benchmark shares: clocks and medians. */
#ifndef FERRY_BENCH_H
#define FERRY_BENCH_H

#include <stddef.h>
#include <stdint.h>

double bench_now(void);			  /* CLOCK_MONOTONIC seconds */
double bench_median(double *v, size_t n); /* sorts v */
double bench_min(const double *v, size_t n);
double bench_max(const double *v, size_t n);
/* One line saying where the numbers were taken: CPU, cores, kernel. */
void bench_print_host(void);

#endif
