/* libBenchMallocCounter.so: load with LD_PRELOAD to count heap allocations. The
 * benchmark programs find mc_alloc_count with dlsym and report allocations per
 * handshake and per record; without the preload they report none. */
#ifndef MALLOCCOUNTER_H
#define MALLOCCOUNTER_H

/* Calls to malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign and valloc
 * since the process started. */
unsigned long long mc_alloc_count(void);

#endif
