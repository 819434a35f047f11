/*
 * dnsproxy.c -- tiny DNS proxy for the DANCE offline test world.
 *
 * It sits between libunbound (or dig) and the authoritative server (NSD)
 * of t/world/world.sh so tests can see and shape the DNS traffic:
 *
 *   dnsproxy -m MODE [-l PORT] [-u UPPORT] [-L QUERYLOG] [-P PORTFILE]
 *            [-f PIDFILE]
 *   dnsproxy -F        print a port in 20000-29999 that is free for UDP
 *                      and TCP on 127.0.0.1, then exit
 *   dnsproxy -Q PORT   probe: exit 0 if 127.0.0.1:PORT answers a UDP
 *                      "test. SOA" query within 2 s, else exit 1
 *
 * The proxy listens on 127.0.0.1:PORT, UDP and TCP.  Without -l (or with
 * -l 0) it picks a free port in 20000-29999 itself; -P writes the port it
 * got (written atomically, so its appearance means "ready").  MODE is:
 *
 *   forward    relay each query to 127.0.0.1:UPPORT over the transport
 *              it came on, and relay the reply back.
 *   delay:MS   like forward, but the query is sent upstream MS ms after
 *              it arrived.  Never blocks: many queries may be in flight.
 *   drop       never answer.
 *   servfail   answer at once with rcode SERVFAIL (question echoed).
 *
 * Every well-formed query is appended to QUERYLOG as one line
 * "qname qtype", lower-case, qname without trailing dot (e.g.
 * "ee311.clients.test tlsa", unknown types as "type65").  Each line is one
 * write(2) on an O_APPEND descriptor, so several proxies can share a log
 * and readers see it at once.  Malformed packets (short, QR set, QDCOUNT
 * != 1, bad or compressed qname) are ignored.  Upstream replies that do
 * not arrive within 5 s after sending are forgotten.  Stop it with SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX		65535
#define MAX_PEND	256
#define MAX_CONN	64
#define UP_TIMEOUT_MS	5000
#define PORT_LO		20000
#define PORT_SPAN	10000

enum mode { MODE_FORWARD, MODE_DROP, MODE_SERVFAIL };

/* A client TCP connection; gen changes when the slot is reused so late
 * replies for a closed connection are dropped. */
struct conn {
	int fd;
	unsigned gen;
	uint8_t *buf;	/* 2 + MSG_MAX bytes */
	size_t have;
};

/* A query waiting to be sent upstream or waiting for its reply. */
struct pend {
	int used;
	int tcp;		/* came over TCP: reply on conn */
	int conn;
	unsigned gen;
	struct sockaddr_in cli;	/* came over UDP: reply to cli */
	uint8_t *q;
	size_t qlen;
	uint64_t release;	/* when to send upstream */
	uint64_t expire;	/* when to give up on the reply */
	int ufd;		/* upstream socket, -1 until sent */
	uint8_t *rbuf;		/* upstream TCP reply, 2 + MSG_MAX */
	size_t rhave;
};

struct proxy {
	enum mode mode;
	unsigned delay_ms;
	uint16_t port, upport;
	int udp, tcp, logfd;
	struct conn conns[MAX_CONN];
	struct pend pend[MAX_PEND];
	uint8_t buf[MSG_MAX];
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned
rand_seed(void)
{
	unsigned s = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
	int fd = open("/dev/urandom", O_RDONLY);
	if(fd >= 0) {
		unsigned r;
		if(read(fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
			s ^= r;
		close(fd);
	}
	return s;
}

static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if(fl != -1)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static struct sockaddr_in
lo_addr(uint16_t port)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sa;
}

/* Bind UDP and TCP sockets on 127.0.0.1:port; 0 on success. */
static int
bind_pair(uint16_t port, int *udp, int *tcp)
{
	struct sockaddr_in sa = lo_addr(port);
	int on = 1;
	*udp = socket(AF_INET, SOCK_DGRAM, 0);
	*tcp = socket(AF_INET, SOCK_STREAM, 0);
	if(*udp < 0 || *tcp < 0)
		goto fail;
	(void)setsockopt(*tcp, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if(bind(*udp, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		bind(*tcp, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		listen(*tcp, 64) != 0)
		goto fail;
	return 0;
fail:
	if(*udp >= 0)
		close(*udp);
	if(*tcp >= 0)
		close(*tcp);
	*udp = *tcp = -1;
	return -1;
}

/* Bind a free port in the test range (random start, then linear). */
static uint16_t
bind_free(int *udp, int *tcp)
{
	unsigned start = rand_seed() % PORT_SPAN, i;
	for(i = 0; i < 500; i++) {
		uint16_t port = (uint16_t)(PORT_LO + (start + i * 7) % PORT_SPAN);
		if(bind_pair(port, udp, tcp) == 0)
			return port;
	}
	return 0;
}

/* Parse the question; on success writes "qname qtype\n" to line and
 * returns the offset just past the question, else 0. */
static size_t
parse_query(const uint8_t *m, size_t len, char *line, size_t linesz)
{
	static const struct { uint16_t t; const char *n; } types[] = {
		{1, "a"}, {2, "ns"}, {5, "cname"}, {6, "soa"}, {12, "ptr"},
		{15, "mx"}, {16, "txt"}, {28, "aaaa"}, {33, "srv"},
		{43, "ds"}, {46, "rrsig"}, {47, "nsec"}, {48, "dnskey"},
		{50, "nsec3"}, {51, "nsec3param"}, {52, "tlsa"}, {255, "any"}
	};
	size_t p = 12, o = 0, i;
	uint16_t qtype;
	if(len < 12 + 5 || (m[2] & 0x80) || m[4] != 0 || m[5] != 1)
		return 0;
	while(p < len && m[p] != 0) {
		size_t l = m[p++];
		if(l > 63 || p + l > len || p - 12 + l > 254)
			return 0;	/* also rejects compression */
		if(o > 0)
			line[o++] = '.';
		for(i = 0; i < l; i++) {
			uint8_t c = m[p + i];
			if(c >= 'A' && c <= 'Z')
				c = (uint8_t)(c - 'A' + 'a');
			if((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
				c == '-' || c == '_' || c == '*')
				line[o++] = (char)c;
			else
				o += (size_t)snprintf(line + o, 5, "\\%03u", c);
		}
		p += l;
	}
	if(p + 5 > len)
		return 0;
	if(o == 0)
		line[o++] = '.';
	qtype = (uint16_t)(m[p + 1] << 8 | m[p + 2]);
	line[o++] = ' ';
	for(i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if(types[i].t == qtype)
			break;
	if(i < sizeof(types) / sizeof(types[0]))
		o += (size_t)snprintf(line + o, linesz - o, "%s\n", types[i].n);
	else
		o += (size_t)snprintf(line + o, linesz - o, "type%u\n", qtype);
	return p + 5;
}

static void
conn_close(struct proxy *px, int c)
{
	close(px->conns[c].fd);
	px->conns[c].fd = -1;
	px->conns[c].gen++;
	px->conns[c].have = 0;
}

/* Send a DNS message back to the client of a pending (or new) query. */
static void
reply(struct proxy *px, int tcp, int c, unsigned gen,
	const struct sockaddr_in *cli, const uint8_t *m, size_t len)
{
	uint8_t *out;
	if(!tcp) {
		(void)sendto(px->udp, m, len, MSG_NOSIGNAL,
			(const struct sockaddr *)cli, sizeof(*cli));
		return;
	}
	if(c < 0 || px->conns[c].fd < 0 || px->conns[c].gen != gen)
		return;	/* client went away */
	out = malloc(len + 2);
	if(!out)
		return;
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
	memcpy(out + 2, m, len);
	/* Replies are small and local; a short write means a stuck client,
	 * which we simply disconnect. */
	if(send(px->conns[c].fd, out, len + 2, MSG_NOSIGNAL) != (ssize_t)(len + 2))
		conn_close(px, c);
	free(out);
}

static void
pend_free(struct pend *pd)
{
	if(pd->ufd >= 0)
		close(pd->ufd);
	free(pd->q);
	free(pd->rbuf);
	memset(pd, 0, sizeof(*pd));
	pd->ufd = -1;
}

/* Open the upstream socket and send the query; on failure the query is
 * forgotten (the client sees a timeout, as with a real dead server). */
static void
pend_send(struct proxy *px, struct pend *pd)
{
	struct sockaddr_in sa = lo_addr(px->upport);
	int fd = socket(AF_INET, pd->tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
	if(fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto fail;
	if(pd->tcp) {
		uint8_t l[2] = { (uint8_t)(pd->qlen >> 8), (uint8_t)pd->qlen };
		pd->rbuf = malloc(2 + MSG_MAX);
		if(!pd->rbuf || send(fd, l, 2, MSG_NOSIGNAL | MSG_MORE) != 2)
			goto fail;
	}
	if(send(fd, pd->q, pd->qlen, MSG_NOSIGNAL) != (ssize_t)pd->qlen)
		goto fail;
	set_nonblock(fd);
	pd->ufd = fd;
	pd->expire = now_ms() + UP_TIMEOUT_MS;
	return;
fail:
	if(fd >= 0)
		close(fd);
	pend_free(pd);
}

/* One well-formed query arrived from a client. */
static void
handle_query(struct proxy *px, const uint8_t *m, size_t len, int tcp,
	int c, const struct sockaddr_in *cli)
{
	char line[1200];
	size_t qend = parse_query(m, len, line, sizeof(line)), i;
	struct pend *pd = NULL;
	if(qend == 0)
		return;
	if(px->logfd >= 0)
		(void)!write(px->logfd, line, strlen(line));
	if(px->mode == MODE_DROP)
		return;
	if(px->mode == MODE_SERVFAIL) {
		uint8_t r[512 + 12];
		if(qend > sizeof(r))
			return;
		memcpy(r, m, qend);
		r[2] = (uint8_t)((r[2] & 0x79) | 0x80);	/* QR, keep op+RD */
		r[3] = 0x80 | 2;			/* RA, SERVFAIL */
		memset(r + 6, 0, 6);			/* no AN/NS/AR */
		reply(px, tcp, c, tcp ? px->conns[c].gen : 0, cli, r, qend);
		return;
	}
	for(i = 0; i < MAX_PEND; i++)
		if(!px->pend[i].used) {
			pd = &px->pend[i];
			break;
		}
	if(!pd || !(pd->q = malloc(len)))
		return;	/* overloaded: behave like a lost packet */
	pd->used = 1;
	pd->tcp = tcp;
	pd->conn = c;
	pd->gen = tcp ? px->conns[c].gen : 0;
	if(cli)
		pd->cli = *cli;
	memcpy(pd->q, m, len);
	pd->qlen = len;
	pd->ufd = -1;
	pd->release = now_ms() + px->delay_ms;
	if(px->delay_ms == 0)
		pend_send(px, pd);
}

static void
udp_read(struct proxy *px)
{
	struct sockaddr_in cli;
	socklen_t cl = sizeof(cli);
	ssize_t n = recvfrom(px->udp, px->buf, sizeof(px->buf), MSG_DONTWAIT,
		(struct sockaddr *)&cli, &cl);
	if(n > 0 && cl == sizeof(cli))
		handle_query(px, px->buf, (size_t)n, 0, -1, &cli);
}

static void
tcp_accept(struct proxy *px)
{
	int fd = accept(px->tcp, NULL, NULL), c;
	if(fd < 0)
		return;
	for(c = 0; c < MAX_CONN; c++)
		if(px->conns[c].fd < 0)
			break;
	if(c == MAX_CONN || (!px->conns[c].buf &&
		!(px->conns[c].buf = malloc(2 + MSG_MAX)))) {
		close(fd);
		return;
	}
	set_nonblock(fd);
	px->conns[c].fd = fd;
	px->conns[c].have = 0;
}

static void
conn_read(struct proxy *px, int c)
{
	struct conn *cn = &px->conns[c];
	ssize_t n = recv(cn->fd, cn->buf + cn->have, 2 + MSG_MAX - cn->have, 0);
	if(n <= 0) {
		if(n == 0 || (errno != EAGAIN && errno != EINTR))
			conn_close(px, c);
		return;
	}
	cn->have += (size_t)n;
	while(cn->fd >= 0 && cn->have >= 2) {
		size_t l = (size_t)cn->buf[0] << 8 | cn->buf[1];
		if(cn->have < 2 + l)
			break;
		handle_query(px, cn->buf + 2, l, 1, c, NULL);
		if(cn->fd < 0)
			break;
		memmove(cn->buf, cn->buf + 2 + l, cn->have - 2 - l);
		cn->have -= 2 + l;
	}
}

/* Upstream socket readable: relay a complete reply if we have one. */
static void
up_read(struct proxy *px, struct pend *pd)
{
	const uint8_t *m;
	size_t len;
	if(!pd->tcp) {
		ssize_t n = recv(pd->ufd, px->buf, sizeof(px->buf), 0);
		if(n < 0 && errno != EAGAIN && errno != EINTR)
			pend_free(pd);	/* e.g. ICMP refused */
		if(n < 12 || memcmp(px->buf, pd->q, 2) != 0)
			return;
		m = px->buf;
		len = (size_t)n;
	} else {
		ssize_t n = recv(pd->ufd, pd->rbuf + pd->rhave,
			2 + MSG_MAX - pd->rhave, 0);
		if(n <= 0) {
			if(n == 0 || (errno != EAGAIN && errno != EINTR))
				pend_free(pd);
			return;
		}
		pd->rhave += (size_t)n;
		if(pd->rhave < 2)
			return;
		len = (size_t)pd->rbuf[0] << 8 | pd->rbuf[1];
		if(pd->rhave < 2 + len)
			return;
		m = pd->rbuf + 2;
	}
	reply(px, pd->tcp, pd->conn, pd->gen, &pd->cli, m, len);
	pend_free(pd);
}

static void
run_timers(struct proxy *px, uint64_t now)
{
	int i;
	for(i = 0; i < MAX_PEND; i++) {
		struct pend *pd = &px->pend[i];
		if(!pd->used)
			continue;
		if(pd->ufd < 0 && pd->release <= now)
			pend_send(px, pd);
		else if(pd->ufd >= 0 && pd->expire <= now)
			pend_free(pd);
	}
}

static int
next_timeout(struct proxy *px, uint64_t now)
{
	uint64_t next = now + 1000;
	int i;
	for(i = 0; i < MAX_PEND; i++) {
		struct pend *pd = &px->pend[i];
		uint64_t t;
		if(!pd->used)
			continue;
		t = pd->ufd < 0 ? pd->release : pd->expire;
		if(t < next)
			next = t;
	}
	return next <= now ? 0 : (int)(next - now);
}

static void
serve(struct proxy *px)
{
	struct pollfd pfd[2 + MAX_CONN + MAX_PEND];
	int who[2 + MAX_CONN + MAX_PEND];
	for(;;) {
		nfds_t n = 0, k;
		int i, r;
		pfd[n].fd = px->udp; pfd[n].events = POLLIN; who[n++] = -1;
		pfd[n].fd = px->tcp; pfd[n].events = POLLIN; who[n++] = -2;
		for(i = 0; i < MAX_CONN; i++)
			if(px->conns[i].fd >= 0) {
				pfd[n].fd = px->conns[i].fd;
				pfd[n].events = POLLIN;
				who[n++] = i;
			}
		for(i = 0; i < MAX_PEND; i++)
			if(px->pend[i].used && px->pend[i].ufd >= 0) {
				pfd[n].fd = px->pend[i].ufd;
				pfd[n].events = POLLIN;
				who[n++] = MAX_CONN + i;
			}
		r = poll(pfd, n, next_timeout(px, now_ms()));
		if(r < 0 && errno != EINTR) {
			perror("dnsproxy: poll");
			exit(1);
		}
		for(k = 0; r > 0 && k < n; k++) {
			if(!pfd[k].revents)
				continue;
			if(who[k] == -1)
				udp_read(px);
			else if(who[k] == -2)
				tcp_accept(px);
			else if(who[k] < MAX_CONN) {
				if(px->conns[who[k]].fd == pfd[k].fd)
					conn_read(px, who[k]);
			} else {
				struct pend *pd = &px->pend[who[k] - MAX_CONN];
				if(pd->used && pd->ufd == pfd[k].fd)
					up_read(px, pd);
			}
		}
		run_timers(px, now_ms());
	}
}

/* -Q: is a DNS server answering on 127.0.0.1:port? */
static int
probe(uint16_t port)
{
	/* id 0x5a5a, RD=0, qdcount 1, "test." SOA IN */
	static const uint8_t q[] = { 0x5a, 0x5a, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
		4, 't', 'e', 's', 't', 0, 0, 6, 0, 1 };
	struct sockaddr_in sa = lo_addr(port);
	uint64_t end = now_ms() + 2000;
	uint8_t buf[4096];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if(fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return 1;
	while(now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		(void)send(fd, q, sizeof(q), 0);
		if(poll(&p, 1, 100) == 1) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if(n >= 12 && buf[0] == 0x5a && buf[1] == 0x5a)
				return 0;
			if(n < 0)	/* refused: not up yet */
				usleep(20000);
		}
	}
	return 1;
}

static int
write_file(const char *path, unsigned long v)
{
	char tmp[4096];
	FILE *f;
	if(snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
		!(f = fopen(tmp, "w")))
		return -1;
	fprintf(f, "%lu\n", v);
	if(fclose(f) != 0 || rename(tmp, path) != 0)
		return -1;
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: dnsproxy -m forward|delay:MS|drop|servfail "
		"[-l PORT] [-u UPPORT] [-L QUERYLOG] [-P PORTFILE] "
		"[-f PIDFILE]\n       dnsproxy -F\n       dnsproxy -Q PORT\n");
	exit(2);
}

static int
parse_port(const char *s, uint16_t *port)
{
	char *end;
	long v = strtol(s, &end, 10);
	if(*s == 0 || *end != 0 || v < 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int
parse_mode(struct proxy *px, const char *s)
{
	char *end;
	if(strcmp(s, "forward") == 0)
		px->mode = MODE_FORWARD;
	else if(strcmp(s, "drop") == 0)
		px->mode = MODE_DROP;
	else if(strcmp(s, "servfail") == 0)
		px->mode = MODE_SERVFAIL;
	else if(strncmp(s, "delay:", 6) == 0) {
		unsigned long v = strtoul(s + 6, &end, 10);
		if(s[6] == 0 || *end != 0 || v > 600000)
			return -1;
		px->mode = MODE_FORWARD;
		px->delay_ms = (unsigned)v;
	} else
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	static struct proxy px;
	const char *logf = NULL, *portf = NULL, *pidf = NULL;
	int opt, have_mode = 0, i;
	uint16_t port = 0;
	signal(SIGPIPE, SIG_IGN);
	px.logfd = -1;
	while((opt = getopt(argc, argv, "FQ:m:l:u:L:P:f:")) != -1) {
		switch(opt) {
		case 'F':
			if(!(port = bind_free(&px.udp, &px.tcp)))
				return 1;
			printf("%u\n", port);
			return 0;
		case 'Q':
			if(parse_port(optarg, &port) != 0)
				usage();
			return probe(port);
		case 'm':
			if(parse_mode(&px, optarg) != 0)
				usage();
			have_mode = 1;
			break;
		case 'l':
			if(parse_port(optarg, &port) != 0)
				usage();
			break;
		case 'u':
			if(parse_port(optarg, &px.upport) != 0)
				usage();
			break;
		case 'L': logf = optarg; break;
		case 'P': portf = optarg; break;
		case 'f': pidf = optarg; break;
		default: usage();
		}
	}
	if(!have_mode || optind != argc ||
		(px.mode == MODE_FORWARD && px.upport == 0))
		usage();
	if(logf && (px.logfd = open(logf, O_WRONLY | O_CREAT | O_APPEND,
		0644)) < 0) {
		perror(logf);
		return 1;
	}
	if(port ? bind_pair(port, &px.udp, &px.tcp) != 0 :
		(port = bind_free(&px.udp, &px.tcp)) == 0) {
		fprintf(stderr, "dnsproxy: cannot bind 127.0.0.1:%u: %s\n",
			port, strerror(errno));
		return 1;
	}
	set_nonblock(px.tcp);
	for(i = 0; i < MAX_CONN; i++)
		px.conns[i].fd = -1;
	for(i = 0; i < MAX_PEND; i++)
		px.pend[i].ufd = -1;
	if((pidf && write_file(pidf, (unsigned long)getpid()) != 0) ||
		(portf && write_file(portf, port) != 0)) {
		perror("dnsproxy: writing pid/port file");
		return 1;
	}
	serve(&px);
	return 0;
}
