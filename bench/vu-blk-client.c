/*
 * A vhost-user-blk front-end in C, written from docs/interop/vhost-user.rst and VIRTIO 1.3 alone
 * (no jvirtio code): one split queue of 256 entries in a sealable memfd, VIRTIO_F_VERSION_1 only
 * (no EVENT_IDX, no protocol features: the ring starts at SET_VRING_KICK), one request at a time.
 * A guest's driver as the simplest one would be: it honours VRING_USED_F_NO_NOTIFY before kicking
 * and waits for the interrupt on the call eventfd (or spins on used->idx with --poll).
 *
 *   vu-blk-client SOCKET --verify BLOCKS     write BLOCKS 4 KiB blocks with a pattern, read them
 *                                            back, compare; exit 0 when every block matches
 *   vu-blk-client SOCKET --seconds S [--span BYTES] [--poll] [--warmup S]
 *                                            random 4 KiB reads at depth 1 for S seconds; prints
 *                                            "reads: N IOPS, p50 X us, p99 Y us (R requests)"
 *
 * Build: cc -O2 -o vu-blk-client bench/vu-blk-client.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define QSIZE 256
#define MEM_SIZE (64u << 20)
#define DESC_OFF 0x0000
#define AVAIL_OFF 0x1000
#define USED_OFF 0x2000
#define HDR_OFF 0x10000
#define STATUS_OFF 0x10100
#define DATA_OFF 0x100000
#define BLOCK 4096

enum { GET_FEATURES = 1, SET_FEATURES = 2, SET_OWNER = 3, SET_MEM_TABLE = 5, SET_VRING_NUM = 8, SET_VRING_ADDR = 9,
       SET_VRING_BASE = 10, GET_VRING_BASE = 11, SET_VRING_KICK = 12, SET_VRING_CALL = 13 };
#define VERSION_1 (1ull << 32)
#define F_NEXT 1
#define F_WRITE 2

struct desc { uint64_t addr; uint32_t len; uint16_t flags; uint16_t next; };

static int sock = -1;
static uint8_t *mem;
static int kickfd, callfd;
static uint16_t avail_idx, last_used;
static int poll_mode;

static void die(const char *what) {
    fprintf(stderr, "vu-blk-client: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

/* One message: header (request, flags = version 1, size), payload, fds as SCM_RIGHTS. */
static void send_msg(uint32_t req, const void *payload, uint32_t size, const int *fds, int nfds) {
    uint8_t buf[12 + 512];
    uint32_t hdr[3] = { req, 1, size };
    memcpy(buf, hdr, 12);
    memcpy(buf + 12, payload, size);
    struct iovec iov = { buf, 12 + size };
    char ctl[CMSG_SPACE(sizeof(int) * 8)];
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        memset(ctl, 0, sizeof ctl);
        m.msg_control = ctl;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    if (sendmsg(sock, &m, 0) != (ssize_t) (12 + size)) die("sendmsg");
}

static uint64_t recv_u64(uint32_t req) {
    uint32_t hdr[3];
    uint64_t v;
    if (recv(sock, hdr, 12, MSG_WAITALL) != 12) die("reply header");
    if (hdr[0] != req || hdr[2] != 8 || !(hdr[1] & 4)) { errno = 0; die("unexpected reply"); }
    if (recv(sock, &v, 8, MSG_WAITALL) != 8) die("reply payload");
    return v;
}

static void u64_msg(uint32_t req, uint64_t v) { send_msg(req, &v, 8, NULL, 0); }

static void vring_state(uint32_t req, uint32_t index, uint32_t num) {
    uint32_t s[2] = { index, num };
    send_msg(req, s, 8, NULL, 0);
}

static void setup(const char *path) {
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if ((sock = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 || connect(sock, (struct sockaddr *) &a, sizeof a) < 0) die(path);
    int memfd = memfd_create("vu-blk-client", MFD_ALLOW_SEALING);
    if (memfd < 0 || ftruncate(memfd, MEM_SIZE) < 0) die("memfd");
    mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (mem == MAP_FAILED) die("mmap");

    u64_msg(SET_OWNER, 0);
    send_msg(GET_FEATURES, NULL, 0, NULL, 0);
    uint64_t offered = recv_u64(GET_FEATURES);
    if (!(offered & VERSION_1)) { errno = 0; die("the backend does not offer VIRTIO_F_VERSION_1"); }
    u64_msg(SET_FEATURES, VERSION_1);

    uint64_t table[1 + 4] = { 1, 0, MEM_SIZE, (uint64_t) (uintptr_t) mem, 0 }; /* nregions, region 0 */
    send_msg(SET_MEM_TABLE, table, sizeof table, &memfd, 1);

    vring_state(SET_VRING_NUM, 0, QSIZE);
    vring_state(SET_VRING_BASE, 0, 0);
    uint64_t addr[6];
    uint32_t *head = (uint32_t *) addr;
    head[0] = 0; /* index */
    head[1] = 0; /* flags */
    addr[1] = (uint64_t) (uintptr_t) (mem + DESC_OFF);
    addr[2] = (uint64_t) (uintptr_t) (mem + USED_OFF);
    addr[3] = (uint64_t) (uintptr_t) (mem + AVAIL_OFF);
    addr[4] = 0;
    send_msg(SET_VRING_ADDR, addr, 40, NULL, 0);
    if ((kickfd = eventfd(0, 0)) < 0 || (callfd = eventfd(0, 0)) < 0) die("eventfd");
    uint64_t zero = 0;
    send_msg(SET_VRING_CALL, &zero, 8, &callfd, 1);
    send_msg(SET_VRING_KICK, &zero, 8, &kickfd, 1);
}

static volatile uint16_t *avail_idx_p(void) { return (volatile uint16_t *) (mem + AVAIL_OFF + 2); }
static volatile uint16_t *used_idx_p(void) { return (volatile uint16_t *) (mem + USED_OFF + 2); }
static volatile uint16_t *used_flags_p(void) { return (volatile uint16_t *) (mem + USED_OFF); }

/* One request (IN or OUT of one block at sector), waited for; returns the status byte. */
static int request(uint32_t type, uint64_t sector, uint64_t data) {
    struct desc *d = (struct desc *) (mem + DESC_OFF);
    uint32_t *hdr = (uint32_t *) (mem + HDR_OFF);
    hdr[0] = type;
    hdr[1] = 0;
    memcpy(hdr + 2, &sector, 8);
    mem[STATUS_OFF] = 0xff;
    d[0] = (struct desc) { HDR_OFF, 16, F_NEXT, 1 };
    d[1] = (struct desc) { data, BLOCK, (uint16_t) (F_NEXT | (type == 0 ? F_WRITE : 0)), 2 };
    d[2] = (struct desc) { STATUS_OFF, 1, F_WRITE, 0 };
    uint16_t *ring = (uint16_t *) (mem + AVAIL_OFF + 4);
    ring[avail_idx % QSIZE] = 0;
    avail_idx++;
    /* The descriptors and the ring entry before the index (virtio_wmb). */
    __atomic_store_n(avail_idx_p(), avail_idx, __ATOMIC_RELEASE);
    /* The index before reading the device's flags (virtio_mb): else both may skip the kick. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!(*used_flags_p() & 1)) {
        uint64_t one = 1;
        if (write(kickfd, &one, 8) != 8) die("kick");
    }
    while (__atomic_load_n(used_idx_p(), __ATOMIC_ACQUIRE) == last_used) {
        if (!poll_mode) {
            /* The backend may have made the shared eventfd non-blocking: wait with poll(2). */
            struct pollfd p = { callfd, POLLIN, 0 };
            uint64_t n;
            if (poll(&p, 1, -1) < 0 && errno != EINTR) die("waiting for the interrupt");
            if (read(callfd, &n, 8) < 0 && errno != EAGAIN) die("reading the interrupt");
        }
    }
    last_used++;
    return mem[STATUS_OFF];
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    float x = *(const float *) a, y = *(const float *) b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: vu-blk-client SOCKET --verify BLOCKS | --seconds S [--span BYTES] [--warmup S] [--poll]\n");
        return 2;
    }
    long verify = 0, span = 256l << 20;
    double seconds = 0, warmup = 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--verify") && i + 1 < argc) verify = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atof(argv[++i]);
        else if (!strcmp(argv[i], "--span") && i + 1 < argc) span = atol(argv[++i]);
        else if (!strcmp(argv[i], "--poll")) poll_mode = 1;
        else { fprintf(stderr, "vu-blk-client: unknown argument %s\n", argv[i]); return 2; }
    }
    if ((verify <= 0) == (seconds <= 0) || span < BLOCK || verify > (long) ((MEM_SIZE - DATA_OFF) / BLOCK)) {
        fprintf(stderr, "vu-blk-client: give one of --verify BLOCKS (1..%u) or --seconds S\n", (MEM_SIZE - DATA_OFF) / BLOCK);
        return 2;
    }
    setup(argv[1]);
    if (verify > 0) {
        for (long b = 0; b < verify; b++) {
            uint64_t *p = (uint64_t *) (mem + DATA_OFF + b * BLOCK);
            for (int w = 0; w < BLOCK / 8; w++) p[w] = (uint64_t) b << 32 ^ (uint64_t) w * 0x9e3779b97f4a7c15ull;
            if (request(1, b * (BLOCK / 512), DATA_OFF + b * BLOCK) != 0) { fprintf(stderr, "write of block %ld failed\n", b); return 1; }
        }
        memset(mem + DATA_OFF, 0, verify * BLOCK);
        for (long b = 0; b < verify; b++) {
            if (request(0, b * (BLOCK / 512), DATA_OFF + b * BLOCK) != 0) { fprintf(stderr, "read of block %ld failed\n", b); return 1; }
            uint64_t *p = (uint64_t *) (mem + DATA_OFF + b * BLOCK);
            for (int w = 0; w < BLOCK / 8; w++) {
                if (p[w] != ((uint64_t) b << 32 ^ (uint64_t) w * 0x9e3779b97f4a7c15ull)) {
                    fprintf(stderr, "block %ld differs at word %d\n", b, w);
                    return 1;
                }
            }
        }
        printf("verified: wrote and read back %ld blocks of %d bytes\n", verify, BLOCK);
        return 0;
    }
    long blocks = span / BLOCK, cap = 20000000, n = 0;
    float *lat = malloc(sizeof(float) * cap);
    uint64_t x = 88172645463325252ull;
    double end = now() + warmup;
    while (now() < end) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        request(0, (x % blocks) * (BLOCK / 512), DATA_OFF);
    }
    double start = now();
    end = start + seconds;
    double t = start;
    while (t < end) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        if (request(0, (x % blocks) * (BLOCK / 512), DATA_OFF) != 0) { fprintf(stderr, "a read failed\n"); return 1; }
        double t2 = now();
        if (n < cap) lat[n] = (float) ((t2 - t) * 1e6);
        n++;
        t = t2;
    }
    long m = n < cap ? n : cap;
    qsort(lat, m, sizeof(float), cmp);
    printf("reads: %.0f IOPS, p50 %.1f us, p99 %.1f us (%ld requests)\n", n / (t - start), lat[m / 2], lat[m * 99 / 100], n);
    return 0;
}
