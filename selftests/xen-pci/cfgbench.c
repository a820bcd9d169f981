// SPDX-License-Identifier: GPL-2.0
/*
 * cfgbench: PCI config-space access throughput and latency through sysfs.
 *
 *   cfgbench CONFIG_FILE [SECONDS] [OFFSET] [SIZE] [read|write]
 *
 * Repeats pread (default) or pwrite of SIZE bytes at OFFSET for SECONDS
 * (default 5) and prints one line: ops, ops/s, µs/op, the CPU time this
 * process used per op, the 50th and 99th percentiles and the maximum of the
 * latency of one op, and how many ops went wrong (mismatches): for reads, how
 * many returned a value other than the first read's (a stable register must
 * give 0); for writes, which write back the value read first, 1 if the
 * register does not read back that value after the last write.
 *
 * One op in 8 is timed (CLOCK_MONOTONIC before and after it) into a histogram
 * of 1-µs buckets up to 100 ms (longer ops count in the last one); a
 * percentile is the upper edge of the bucket it falls in. A timed op's time
 * includes about one clock read, whose mean cost, measured before the run, is
 * printed too (clock_us): in a Xen PV domain under TCG a clock read may be a
 * system call and a trapped rdtsc, so timing every op would slow the run
 * itself. The other ops are timed only in total (ops/s, µs/op).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS 100000

static uint32_t hist[BUCKETS];

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* The upper edge in µs of the bucket that holds the op of rank ceil(p * ops). */
static long percentile(long ops, double p)
{
	long want = (long)(p * ops + 0.999999), seen = 0;

	if (want < 1)
		want = 1;
	for (long i = 0; i < BUCKETS; i++) {
		seen += hist[i];
		if (seen >= want)
			return i + 1;
	}
	return BUCKETS;
}

int main(int argc, char **argv)
{
	double secs = argc > 2 ? atof(argv[2]) : 5.0;
	long off = argc > 3 ? strtol(argv[3], NULL, 0) : 0;
	int size = argc > 4 ? atoi(argv[4]) : 4;
	int do_write = argc > 5 && !strcmp(argv[5], "write");
	uint32_t first = 0, v;
	long ops = 0, timed_ops = 0, diff = 0, us;
	double t0, c0, t, c, start = 0, now = 0, max = 0, clk;
	int fd;

	if (argc < 2 || (size != 1 && size != 2 && size != 4) ||
	    (argc > 5 && !do_write && strcmp(argv[5], "read"))) {
		fprintf(stderr, "usage: %s CONFIG_FILE [SECONDS] [OFFSET] [1|2|4] [read|write]\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], do_write ? O_RDWR : O_RDONLY);
	if (fd < 0 || pread(fd, &first, size, off) != size) {
		perror(argv[1]);
		return 1;
	}
	t0 = mono();
	for (int i = 0; i < 1000; i++)
		now = mono();
	clk = (now - t0) * 1e3;
	t0 = mono();
	c0 = cpu();
	do {
		for (int i = 0; i < 16; i++, ops++) {
			/* Ops 7 and 15 of each 16 are timed (the last one ends the batch). */
			int timed = (i & 7) == 7;

			if (timed)
				start = mono();
			v = 0;
			if (do_write) {
				if (pwrite(fd, &first, size, off) != size) {
					perror("pwrite");
					return 1;
				}
			} else {
				if (pread(fd, &v, size, off) != size) {
					perror("pread");
					return 1;
				}
				if (v != first)
					diff++;
			}
			if (timed) {
				now = mono();
				if (now - start > max)
					max = now - start;
				us = (long)((now - start) * 1e6);
				hist[us < BUCKETS ? us : BUCKETS - 1]++;
				timed_ops++;
			}
		}
		t = now - t0;
	} while (t < secs);
	c = cpu() - c0;
	if (do_write) {
		v = 0;
		if (pread(fd, &v, size, off) != size) {
			perror("pread");
			return 1;
		}
		diff = v != first;
	}
	printf("cfgbench op=%s off=0x%lx size=%d value=0x%x ops=%ld secs=%.2f ops_per_s=%.0f us_per_op=%.1f cpu_us_per_op=%.1f p50_us=%ld p99_us=%ld max_us=%.0f timed_ops=%ld clock_us=%.1f mismatches=%ld \n",
	       do_write ? "write" : "read", off, size, first, ops, t, ops / t, t * 1e6 / ops,
	       c * 1e6 / ops, percentile(timed_ops, 0.50), percentile(timed_ops, 0.99), max * 1e6, timed_ops, clk, diff);
	return 0;
}
