/* An application built only from the installed header, library and
 * pkg-config file: create a udp endpoint, send itself a message. */
#include <hpn/hpn.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	hpn_ep *a, *b;
	hpn_peer_t peer, from;
	struct hpn_event ev;
	char addr[64], buf[16];
	int r;

	if (hpn_ep_create("plugin=udp,hugepages=off,bufs=128", &a) || hpn_ep_create("plugin=udp,hugepages=off,bufs=128", &b)) {
		fprintf(stderr, "consumer: %s\n", hpn_last_error());
		return 1;
	}
	if (hpn_listen(a, "127.0.0.1:0") || hpn_ep_local_addr(a, addr, sizeof(addr)) ||
	    hpn_connect(b, addr, 0, &peer) != -EINPROGRESS) {
		fprintf(stderr, "consumer: %s\n", hpn_last_error());
		return 1;
	}
	for (int i = 0; i < 100000 && hpn_poll(b, &ev, 1) == 0; i++)
		hpn_poll(a, &ev, 0);
	if (ev.type != HPN_EV_CONNECTED || hpn_send(b, peer, "hi", 2)) {
		fprintf(stderr, "consumer: connect/send failed\n");
		return 1;
	}
	while ((r = hpn_recv(a, &from, buf, sizeof(buf))) == -EAGAIN)
		;
	hpn_ep_destroy(b);
	hpn_ep_destroy(a);
	if (r != 2 || memcmp(buf, "hi", 2))
		return 1;
	printf("consumer: hpn %s via pkg-config OK\n", hpn_version());
	return 0;
}
