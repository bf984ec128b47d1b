// A small iSCSI load generator on libiscsi's asynchronous API (fio here
// has no iSCSI engine): random 4 KiB (or BS) reads or writes at a fixed
// queue depth for a number of seconds, on one connection, as fio's nbd
// engine loads an NBD server. Prints one JSON line: IOPS, MiB/s, p50/p99
// completion latency in microseconds.
//
//   iscsi_load URL read|write BS DEPTH SECONDS
//
// Built by bench/iscsi_bench.sh (cc ... -liscsi).
#define _GNU_SOURCE
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define MAX_SAMPLES (1 << 24)

struct slot {
  uint64_t started_ns;
};

static struct iscsi_context* iscsi;
static struct iscsi_url* url;
static int writing;
static uint32_t block_bytes = 512, bs, blocks;
static uint64_t lun_blocks;
static uint64_t done_count, errors, deadline_ns;
static unsigned outstanding;
static uint32_t* samples;
static uint64_t nsamples;
static unsigned char* data;
static unsigned seed = 1;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void submit(struct slot* s);

static void done(struct iscsi_context* ctx, int status, void* command_data, void* private_data) {
  (void)ctx;
  struct slot* s = private_data;
  struct scsi_task* task = command_data;
  if (status != SCSI_STATUS_GOOD) ++errors;
  scsi_free_scsi_task(task);
  uint64_t now = now_ns();
  if (nsamples < MAX_SAMPLES) samples[nsamples++] = (uint32_t)((now - s->started_ns) / 1000);
  ++done_count;
  --outstanding;
  if (now < deadline_ns) submit(s);
}

static void submit(struct slot* s) {
  uint64_t span = lun_blocks / blocks;
  uint64_t lba = ((uint64_t)rand_r(&seed) << 16 ^ (uint64_t)rand_r(&seed)) % span * blocks;
  s->started_ns = now_ns();
  struct scsi_task* t =
      writing ? iscsi_write16_task(iscsi, url->lun, lba, data, bs, block_bytes, 0, 0, 0, 0, 0,
                                   done, s)
              : iscsi_read16_task(iscsi, url->lun, lba, bs, block_bytes, 0, 0, 0, 0, 0, done, s);
  if (!t) {
    fprintf(stderr, "cannot queue a command: %s\n", iscsi_get_error(iscsi));
    exit(1);
  }
  ++outstanding;
}

static int by_value(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s URL read|write BS DEPTH SECONDS\n", argv[0]);
    return 2;
  }
  writing = strcmp(argv[2], "write") == 0;
  bs = (uint32_t)atoi(argv[3]);
  unsigned depth = (unsigned)atoi(argv[4]);
  int seconds = atoi(argv[5]);
  iscsi = iscsi_create_context("iqn.2026-12.org.sve:bench");
  url = iscsi_parse_full_url(iscsi, argv[1]);
  if (!url) {
    fprintf(stderr, "bad URL: %s\n", iscsi_get_error(iscsi));
    return 1;
  }
  iscsi_set_targetname(iscsi, url->target);
  iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
  iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE);
  if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) != 0) {
    fprintf(stderr, "login failed: %s\n", iscsi_get_error(iscsi));
    return 1;
  }
  struct scsi_task* cap = iscsi_readcapacity16_sync(iscsi, url->lun);
  struct scsi_readcapacity16* rc16 = cap ? scsi_datain_unmarshall(cap) : NULL;
  if (!rc16) {
    fprintf(stderr, "READ CAPACITY(16) failed: %s\n", iscsi_get_error(iscsi));
    return 1;
  }
  block_bytes = rc16->block_length;
  lun_blocks = rc16->returned_lba + 1;
  scsi_free_scsi_task(cap);
  blocks = bs / block_bytes;
  data = malloc(bs);
  memset(data, 0x5a, bs);
  samples = malloc(sizeof(uint32_t) * MAX_SAMPLES);
  struct slot* slots = calloc(depth, sizeof(struct slot));
  uint64_t start = now_ns();
  deadline_ns = start + (uint64_t)seconds * 1000000000u;
  for (unsigned i = 0; i < depth; ++i) submit(&slots[i]);
  while (outstanding > 0) {
    struct pollfd pfd = {iscsi_get_fd(iscsi), (short)iscsi_which_events(iscsi), 0};
    if (poll(&pfd, 1, 1000) < 0) break;
    if (iscsi_service(iscsi, pfd.revents) < 0) {
      fprintf(stderr, "iscsi_service failed: %s\n", iscsi_get_error(iscsi));
      return 1;
    }
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  qsort(samples, nsamples, sizeof(uint32_t), by_value);
  printf("{\"iops\": %.0f, \"mib_s\": %.1f, \"p50_us\": %u, \"p99_us\": %u, \"errors\": %llu}\n",
         (double)done_count / elapsed, (double)done_count * bs / elapsed / (1 << 20),
         nsamples ? samples[nsamples / 2] : 0, nsamples ? samples[nsamples * 99 / 100] : 0,
         (unsigned long long)errors);
  iscsi_logout_sync(iscsi);
  iscsi_destroy_context(iscsi);
  return errors ? 1 : 0;
}
