/* An endpoint made, set listening and destroyed N times in one process must
 * leave nothing behind: the process's open files after the last round are
 * those after the first (libraries' one-time set-up is done by then).
 *   ep_cycle CONFIG LISTEN_ADDR N
 * Prints the counts; exit 0 when they match, 1 when not, 2 on an error. */
#include <hpn/hpn.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

static int open_files(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the directory's own fd */
}

int main(int argc, char **argv)
{
	int first = -1, n = argc == 4 ? atoi(argv[3]) : 0;

	if (n < 2) {
		fprintf(stderr, "usage: ep_cycle CONFIG LISTEN_ADDR N (N >= 2)\n");
		return 2;
	}
	for (int i = 0; i < n; i++) {
		hpn_ep *ep;

		if (hpn_ep_create(argv[1], &ep) || hpn_listen(ep, argv[2])) {
			fprintf(stderr, "ep_cycle: round %d: %s\n", i + 1, hpn_last_error());
			return 2;
		}
		hpn_ep_destroy(ep);
		if (!i)
			first = open_files();
	}
	printf("open files after round 1: %d, after round %d: %d\n", first, n, open_files());
	return open_files() == first ? 0 : 1;
}
