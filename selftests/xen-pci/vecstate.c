// SPDX-License-Identifier: GPL-2.0
/*
 * vecstate: does the vector register state of a process survive context
 * switches? Forks N workers; each loads its own pattern into the vector
 * registers (YMM with AVX, XMM otherwise), yields, and checks the registers
 * still hold it, for SECONDS. Prints the number of corruptions; exits 1 on any.
 *
 *   vecstate [SECONDS] [WORKERS]
 *
 * A lab check: dom0 programs crashed at random inside glibc's AVX2 string
 * functions under Xen 4.17 on QEMU TCG with -cpu max.
 */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cpuid.h>

static int have_avx(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	/* AVX and OSXSAVE: the OS saves YMM state. */
	return (c & (1u << 28)) && (c & (1u << 27));
}

__attribute__((target("avx")))
static long check_ymm(uint64_t seed)
{
	uint64_t in[4] = { seed, ~seed, seed * 3, seed ^ 0x5a5a5a5a5a5a5a5aull };
	uint64_t out[4];

	/* Load ymm0-7, give the CPU away, read them back. */
	__asm__ volatile(
		"vmovdqu (%0), %%ymm0\n\tvmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm2\n\t"
		"vmovdqa %%ymm0, %%ymm3\n\tvmovdqa %%ymm0, %%ymm4\n\tvmovdqa %%ymm0, %%ymm5\n\t"
		"vmovdqa %%ymm0, %%ymm6\n\tvmovdqa %%ymm0, %%ymm7\n\t"
		"mov $24, %%eax\n\tsyscall\n\t"	/* sched_yield */
		"vpxor %%ymm1, %%ymm7, %%ymm7\n\tvpor %%ymm2, %%ymm7, %%ymm7\n\t"
		"vmovdqu %%ymm7, (%1)\n\t"
		:: "r"(in), "r"(out) : "rax", "rcx", "r11", "memory",
		   "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7");
	/* ymm7 ^ ymm1 = 0, | ymm2 = the pattern. */
	return memcmp(in, out, sizeof(in)) != 0;
}

/* Keep a pattern live in ymm registers through a long spin: preemption by
 * interrupts, not only voluntary switches, must preserve it. */
__attribute__((target("avx")))
static long spin_ymm(uint64_t seed)
{
	uint64_t in[4] = { seed, ~seed, seed * 5, seed ^ 0xa5a5a5a5a5a5a5a5ull };
	long bad = 0;

	__asm__ volatile(
		"vmovdqu (%1), %%ymm0\n\tvmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm5\n\t"
		"mov $2000000, %%ecx\n"
		"1:\n\tvpxor %%ymm0, %%ymm1, %%ymm2\n\tvptest %%ymm2, %%ymm2\n\tjnz 2f\n\t"
		"vpxor %%ymm5, %%ymm1, %%ymm3\n\tvptest %%ymm3, %%ymm3\n\tjnz 2f\n\t"
		"dec %%ecx\n\tjnz 1b\n\tjmp 3f\n"
		"2:\n\tmov $1, %0\n"
		"3:\n\t"
		: "+r"(bad) : "r"(in) : "rcx", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm5");
	return bad;
}

static long check_xmm(uint64_t seed)
{
	uint64_t in[2] = { seed, ~seed };
	uint64_t out[2];

	__asm__ volatile(
		"movdqu (%0), %%xmm0\n\tmovdqa %%xmm0, %%xmm1\n\tmovdqa %%xmm0, %%xmm7\n\t"
		"mov $24, %%eax\n\tsyscall\n\t"
		"pxor %%xmm1, %%xmm7\n\tpor %%xmm0, %%xmm7\n\t"
		"movdqu %%xmm7, (%1)\n\t"
		:: "r"(in), "r"(out) : "rax", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm7");
	return memcmp(in, out, sizeof(in)) != 0;
}

int main(int argc, char **argv)
{
	int secs = argc > 1 ? atoi(argv[1]) : 5;
	int workers = argc > 2 ? atoi(argv[2]) : 4;
	int avx = have_avx(), status, bad_workers = 0;

	for (int w = 0; w < workers; w++) {
		if (fork() == 0) {
			long bad = 0, n = 0;
			time_t end = time(NULL) + secs;
			uint64_t seed = 0x9e3779b97f4a7c15ull * (w + 1);

			while (time(NULL) < end) {
				for (int i = 0; i < 256; i++, n++) {
					seed = seed * 6364136223846793005ull + 1442695040888963407ull;
					bad += avx ? check_ymm(seed) : check_xmm(seed);
				}
				if (avx)
					bad += spin_ymm(seed);
			}
			printf("vecstate worker %d: %s checks=%ld corrupted=%ld\n", w, avx ? "ymm" : "xmm", n, bad);
			fflush(stdout);
			_exit(bad ? 1 : 0);
		}
	}
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			bad_workers++;
	printf("vecstate: %s, %d worker(s) saw corrupted registers\n", avx ? "ymm" : "xmm", bad_workers);
	return bad_workers ? 1 : 0;
}
