#pragma once
// A TLS connection's record layer driven from memory, for a host session
// served on its core's ring (docs/security.md, "NBD over TLS"): the session
// moves ciphertext between the socket and this object's inbox and outbox
// with its ring; GnuTLS never touches the socket, never blocks and needs no
// thread. Plain text is decrypted straight into the caller's buffers (the
// request's pooled pages) and encrypted from them. Used by one thread at a
// time; GnuTLS stays inside io/tls.
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sve {

class TlsSession;

class TlsRecords {
 public:
  // Takes over `session`, whose handshake is done (over a blocking
  // socket): records it has already read, and plain text it has already
  // decrypted, stay in it and come out of read() first.
  explicit TlsRecords(std::shared_ptr<TlsSession> session);
  ~TlsRecords();
  TlsRecords(const TlsRecords&) = delete;
  TlsRecords& operator=(const TlsRecords&) = delete;

  // Plain text of the records received so far, into `iov` (n segments, in
  // order): the bytes (> 0); 0 once the peer ended its stream; -EAGAIN when
  // nothing is complete (receive more into inbox()); -EPROTO for a record
  // that fails its check, or anything else GnuTLS refuses.
  ssize_t read(const iovec* iov, int n);
  // Room for ciphertext from the socket (never empty), and then how much
  // of it was filled.
  iovec inbox();
  void received(size_t n);

  // Seals the plain text of `iov` into records in the outbox, at most
  // `max` bytes of it (pieces go out in as few records as fit): how many
  // bytes it took, or -EPROTO.
  ssize_t write(const iovec* iov, int n, size_t max);
  // A close_notify alert into the outbox (best effort).
  void close();
  // The ciphertext waiting for the socket, and then how much of it went.
  iovec outbox() const;
  void sent(size_t n);
  bool outbox_empty() const { return out_from_ == out_.size(); }

  struct Impl;  // (GnuTLS's transport callbacks reach the buffers)

 private:
  std::shared_ptr<TlsSession> session_;
  std::vector<uint8_t> in_;
  size_t in_from_ = 0, in_to_ = 0;
  std::vector<uint8_t> out_;
  size_t out_from_ = 0;
};

}  // namespace sve
