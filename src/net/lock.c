/*
 * lock.c - lock files under /run/hpn (lock.h).
 */
#include "net/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void read_holder(int fd, char *holder, size_t len)
{
	ssize_t r;

	if (!len)
		return;
	r = pread(fd, holder, len - 1, 0);
	holder[r > 0 ? r : 0] = 0;
	holder[strcspn(holder, "\n")] = 0;
	if (!holder[0])
		snprintf(holder, len, "?");
}

int hpn_lock_take(struct hpn_lock *l, const char *kind, const char *name, char *holder, size_t holder_len)
{
	struct stat ns;

	l->fd = -1;
	if (stat("/proc/self/ns/net", &ns))
		ns.st_ino = 0;
	snprintf(l->path, sizeof(l->path), HPN_LOCK_DIR "/%s-%llu-%s.lock", kind, (unsigned long long)ns.st_ino, name);
	if (mkdir(HPN_LOCK_DIR, 0755) && errno != EEXIST)
		return -errno;
	for (int tries = 0; tries < 8; tries++) {
		struct stat held, named;

		l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (l->fd < 0)
			return -errno;
		if (flock(l->fd, LOCK_EX | LOCK_NB)) {
			read_holder(l->fd, holder, holder_len);
			close(l->fd);
			l->fd = -1;
			return -EBUSY;
		}
		/* The owner removes the file when it lets go: a lock taken on
		 * a file no longer at the path is no lock - again. */
		if (!fstat(l->fd, &held) && !stat(l->path, &named) && held.st_ino == named.st_ino) {
			if (ftruncate(l->fd, 0) == 0)
				dprintf(l->fd, "%d\n", (int)getpid());
			return 0;
		}
		close(l->fd);
		l->fd = -1;
	}
	return -ESTALE;
}

void hpn_lock_drop(struct hpn_lock *l)
{
	if (l->fd < 0)
		return;
	unlink(l->path);
	close(l->fd);
	l->fd = -1;
}
