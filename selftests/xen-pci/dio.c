// SPDX-License-Identifier: GPL-2.0
/*
 * dio: write a pattern to a block device with direct I/O, read it back with
 * direct I/O, and compare, for the guest's NVMe test (domU/devices.sh).
 *
 *   dio DEVICE MIB SEED
 *
 * Writes MIB mebibytes from offset 0 (O_DIRECT | O_SYNC, page-aligned buffers,
 * 64 KiB requests), reads them back (O_DIRECT), and prints
 *   written=N read=N sum_written=X sum_read=Y mismatches=M
 * where the sums are FNV-1a hashes of the data. The pattern depends on SEED,
 * so data left by an earlier run cannot pass for this one's. Exit status 0
 * only if every byte read back is the byte written.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	while (n--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void fill(unsigned char *buf, size_t n, uint64_t *state)
{
	size_t i;

	for (i = 0; i < n; i += 8) {
		/* xorshift64 */
		*state ^= *state << 13;
		*state ^= *state >> 7;
		*state ^= *state << 17;
		memcpy(buf + i, state, 8);
	}
}

int main(int argc, char **argv)
{
	unsigned char *w, *r;
	uint64_t state, sum_w = 0xcbf29ce484222325ULL, sum_r = sum_w;
	long long written = 0, nread = 0, mismatches = 0;
	long mib, chunks, i;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: dio DEVICE MIB SEED\n");
		return 2;
	}
	mib = atol(argv[2]);
	state = strtoull(argv[3], NULL, 0) | 1;
	chunks = mib * (1024 * 1024 / CHUNK);
	if (mib <= 0 || posix_memalign((void **)&w, 4096, CHUNK) ||
	    posix_memalign((void **)&r, 4096, CHUNK)) {
		fprintf(stderr, "dio: bad size or no memory\n");
		return 2;
	}

	fd = open(argv[1], O_WRONLY | O_DIRECT | O_SYNC);
	if (fd < 0) {
		perror("dio: open for writing");
		return 1;
	}
	for (i = 0; i < chunks; i++) {
		fill(w, CHUNK, &state);
		if (pwrite(fd, w, CHUNK, (off_t)i * CHUNK) != CHUNK) {
			perror("dio: pwrite");
			return 1;
		}
		sum_w = fnv(sum_w, w, CHUNK);
		written += CHUNK;
	}
	close(fd);

	state = strtoull(argv[3], NULL, 0) | 1;
	fd = open(argv[1], O_RDONLY | O_DIRECT);
	if (fd < 0) {
		perror("dio: open for reading");
		return 1;
	}
	for (i = 0; i < chunks; i++) {
		long j;

		if (pread(fd, r, CHUNK, (off_t)i * CHUNK) != CHUNK) {
			perror("dio: pread");
			return 1;
		}
		sum_r = fnv(sum_r, r, CHUNK);
		nread += CHUNK;
		fill(w, CHUNK, &state);
		for (j = 0; j < CHUNK; j++)
			mismatches += w[j] != r[j];
	}
	close(fd);

	printf("written=%lld read=%lld sum_written=%016llx sum_read=%016llx mismatches=%lld\n",
	       written, nread, (unsigned long long)sum_w, (unsigned long long)sum_r, mismatches);
	return written == nread && sum_w == sum_r && mismatches == 0 ? 0 : 1;
}
