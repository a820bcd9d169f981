// SPDX-License-Identifier: GPL-2.0
/*
 * mmio: read or write one 32-bit register of a PCI memory BAR through its
 * sysfs resource file, for dom0's tests of a seized device (dom0/sysfs.sh).
 *
 *   mmio RESOURCE OFFSET          prints the register's value (0x%08x)
 *   mmio RESOURCE OFFSET VALUE    writes VALUE to it
 *
 * RESOURCE is /sys/bus/pci/devices/BDF/resourceN; OFFSET and VALUE are read
 * with strtoul (0x prefixes). The device's memory decoding must be on.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned long offset, page, value = 0;
	volatile uint32_t *reg;
	char *end;
	void *map;
	long psz;
	int fd;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: mmio RESOURCE OFFSET [VALUE]\n");
		return 2;
	}
	offset = strtoul(argv[2], &end, 0);
	if (*end || offset % 4) {
		fprintf(stderr, "mmio: bad offset '%s'\n", argv[2]);
		return 2;
	}
	if (argc == 4) {
		value = strtoul(argv[3], &end, 0);
		if (*end || value > 0xffffffffUL) {
			fprintf(stderr, "mmio: bad value '%s'\n", argv[3]);
			return 2;
		}
	}
	psz = sysconf(_SC_PAGESIZE);
	page = offset & ~(unsigned long)(psz - 1);
	fd = open(argv[1], argc == 4 ? O_RDWR | O_SYNC : O_RDONLY | O_SYNC);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	map = mmap(NULL, psz, argc == 4 ? PROT_READ | PROT_WRITE : PROT_READ,
		   MAP_SHARED, fd, page);
	if (map == MAP_FAILED) {
		perror("mmio: mmap");
		return 1;
	}
	reg = (volatile uint32_t *)((char *)map + (offset - page));
	if (argc == 4)
		*reg = (uint32_t)value;
	else
		printf("0x%08x\n", *reg);
	munmap(map, psz);
	close(fd);
	return 0;
}
