// What the passes over a 4 KiB block that a mirrored write cannot avoid
// cost on this machine, each alone, in a tight loop: the floor under
// `sve-bench --mirror`'s figure (docs/cache.md, "What a mirrored write
// costs at the least"). A mirrored write over the sealed data channel
// needs at least: the owner's copy into its NVRAM slot and its CRC-32C,
// the frame's GMAC on both nodes, the frame through loopback TCP (send
// and receive), the partner's copy into its NVRAM slot and its CRC-32C.
//
//   bench/mirror_floor.sh      (compiles this, runs it three times)
#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <isa-l/crc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBlock = 4096;

double ns_each(Clock::time_point from, Clock::time_point to, long n) {
  return std::chrono::duration<double, std::nano>(to - from).count() / static_cast<double>(n);
}

double cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

}  // namespace

int main() {
  const long n = 400000;
  std::vector<char> block(kBlock, 7), hot(kBlock);

  // Copies: into a slot drawn at random from an area as large as a node's
  // NVRAM in `sve-bench --mirror` (2 x 65,536 slots, 512 MiB), and into one
  // buffer that stays in the CPU's cache.
  const size_t slots = 2 * 65536;
  auto* nvram = static_cast<char*>(mmap(nullptr, slots * kBlock, PROT_READ | PROT_WRITE,
                                        MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
  if (nvram == MAP_FAILED) return 1;
  std::mt19937_64 rng(1);
  std::vector<uint32_t> slot(n);
  for (auto& s : slot) s = static_cast<uint32_t>(rng() % slots);
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) std::memcpy(nvram + size_t{slot[i]} * kBlock, block.data(), kBlock);
  auto t1 = Clock::now();
  for (long i = 0; i < n; ++i) {
    std::memcpy(hot.data(), block.data(), kBlock);
    asm volatile("" ::: "memory");
  }
  auto t2 = Clock::now();

  unsigned crc = 0;
  for (long i = 0; i < n; ++i)
    crc = crc32_iscsi(reinterpret_cast<unsigned char*>(block.data()), kBlock, crc);
  auto t3 = Clock::now();

  // The frame's tag as io/channel/frame_seal.cpp makes it.
  gnutls_aead_cipher_hd_t cipher;
  unsigned char key[32] = {1};
  gnutls_datum_t k{key, sizeof key};
  if (gnutls_aead_cipher_init(&cipher, GNUTLS_CIPHER_AES_256_GCM, &k) < 0) return 1;
  giovec_t whole{block.data(), kBlock};
  unsigned char tag[16];
  for (long i = 0; i < n; ++i) {
    unsigned char nonce[12] = {};
    std::memcpy(nonce, &i, sizeof i);
    size_t tag_bytes = sizeof tag;
    gnutls_aead_cipher_encryptv2(cipher, nonce, sizeof nonce, &whole, 1, nullptr, 0, tag,
                                 &tag_bytes);
  }
  auto t4 = Clock::now();

  // Loopback TCP (TCP_NODELAY), 16 blocks a send as a busy channel batches
  // them, received by another thread: the wall time and both ends' CPU.
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t at_len = sizeof at;
  if (bind(listener, reinterpret_cast<sockaddr*>(&at), sizeof at) || listen(listener, 1) ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&at), &at_len))
    return 1;
  int out = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(out, reinterpret_cast<sockaddr*>(&at), sizeof at)) return 1;
  int in = accept(listener, nullptr, nullptr);
  int one = 1;
  setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const long frames = 200000;
  double cpu0 = cpu_ns();
  auto t5 = Clock::now();
  std::thread receiver([&] {
    std::vector<char> buffer(1 << 16);
    long got = 0;
    while (got < frames * static_cast<long>(kBlock)) {
      ssize_t r = recv(in, buffer.data(), buffer.size(), 0);
      if (r <= 0) break;
      got += r;
    }
  });
  std::vector<char> batch(16 * kBlock, 3);
  for (long i = 0; i < frames / 16; ++i)
    for (size_t sent = 0; sent < batch.size();) {
      ssize_t s = send(out, batch.data() + sent, batch.size() - sent, 0);
      if (s <= 0) return 1;
      sent += static_cast<size_t>(s);
    }
  receiver.join();
  auto t6 = Clock::now();
  double tcp_cpu = (cpu_ns() - cpu0) / frames;

  double cold = ns_each(t0, t1, n), warm = ns_each(t1, t2, n), crc_ns = ns_each(t2, t3, n),
         gmac = ns_each(t3, t4, n);
  std::printf("copy 4 KiB into a random slot of 512 MiB   %6.0f ns\n", cold);
  std::printf("copy 4 KiB within the CPU's cache         %6.0f ns\n", warm);
  std::printf("CRC-32C of 4 KiB (ISA-L)                  %6.0f ns  (%08x)\n", crc_ns, crc);
  std::printf("GMAC of 4 KiB (GnuTLS AES-256-GCM)        %6.0f ns\n", gmac);
  std::printf("loopback TCP, 4 KiB: wall %.0f ns, CPU of both ends %.0f ns\n",
              ns_each(t5, t6, frames), tcp_cpu);
  // The least CPU a mirrored write takes (both nodes): two tags, TCP's two
  // ends, two CRCs, two copies within the cache (the best case for the
  // slots), and what that allows a core pair at most.
  double least = 2 * gmac + tcp_cpu + 2 * crc_ns + 2 * warm;
  std::printf("least CPU a mirrored write takes: %.0f ns: at most %.0fk writes/s a core pair\n",
              least, 2e6 / least);
  return 0;
}
