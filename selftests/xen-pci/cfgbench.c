// SPDX-License-Identifier: GPL-2.0
/*
 * cfgbench: PCI config-space read throughput through sysfs.
 *
 *   cfgbench CONFIG_FILE [SECONDS] [OFFSET] [SIZE]
 *
 * Repeats pread(SIZE bytes at OFFSET) for SECONDS (default 5) and prints one
 * line: ops, ops/s, µs/op, the CPU time this process used per op, and how many
 * reads differed from the first one (a stable register must give 0).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
	double secs = argc > 2 ? atof(argv[2]) : 5.0;
	long off = argc > 3 ? strtol(argv[3], NULL, 0) : 0;
	int size = argc > 4 ? atoi(argv[4]) : 4;
	uint32_t first = 0, v;
	long ops = 0, diff = 0;
	double t0, c0, t, c;
	int fd;

	if (argc < 2 || (size != 1 && size != 2 && size != 4)) {
		fprintf(stderr, "usage: %s CONFIG_FILE [SECONDS] [OFFSET] [1|2|4]\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || pread(fd, &first, size, off) != size) {
		perror(argv[1]);
		return 1;
	}
	t0 = mono();
	c0 = cpu();
	do {
		for (int i = 0; i < 16; i++, ops++) {
			v = 0;
			if (pread(fd, &v, size, off) != size) {
				perror("pread");
				return 1;
			}
			if (v != first)
				diff++;
		}
		t = mono() - t0;
	} while (t < secs);
	c = cpu() - c0;
	printf("cfgbench off=0x%lx size=%d value=0x%x ops=%ld secs=%.2f ops_per_s=%.0f us_per_op=%.1f cpu_us_per_op=%.1f mismatches=%ld \n",
	       off, size, first, ops, t, ops / t, t * 1e6 / ops, c * 1e6 / ops, diff);
	return 0;
}
