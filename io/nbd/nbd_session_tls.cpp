// NbdSession over TLS (io/nbd/nbd_session.hpp): the same state machine, with
// the ring moving ciphertext between the socket and the session's TLS
// records. A request's payload is decrypted straight into its buffer and a
// read's data sealed from the buffer it was read into; no thread relays.
#include <cerrno>
#include <cstring>

#include "io/nbd/nbd_session.hpp"

namespace sve::nbd {
namespace {

// Plain text sealed per send: the outbox stays this small, and a large
// read goes out a piece at a time as the socket takes it.
constexpr size_t kTlsSendChunk = 256 * 1024;

// `iov` (n segments) past its first `skip` bytes, into `out`: how many
// segments are left.
int skip_bytes(const iovec* iov, int n, size_t skip, iovec* out) {
  int k = 0;
  for (int i = 0; i < n; ++i) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    out[k++] = {static_cast<char*>(iov[i].iov_base) + skip, iov[i].iov_len - skip};
    skip = 0;
  }
  return k;
}

}  // namespace

// Decrypts what the records hold, taking more ciphertext from the socket as
// long as it has some, until `iov` is full or nothing more is there.
ssize_t NbdSession::tls_receive_now(iovec* iov, int n) {
  size_t total = 0;
  iovec rest[Buffer::kMaxSegments];
  for (;;) {
    const iovec* at = iov;
    int left = n;
    if (total > 0) {
      left = skip_bytes(iov, n, total, rest);
      if (left == 0) break;
      at = rest;
    }
    ssize_t r = tls_->read(at, left);
    if (r > 0) {
      total += static_cast<size_t>(r);
      continue;
    }
    if (r != -EAGAIN) {
      if (total > 0) break;  // (the end or the failure shows next time)
      if (r == -EPROTO) end("a TLS record from the host failed its check");
      return r;
    }
    iovec room = tls_->inbox();
    ssize_t got = ::recv(fd_, room.iov_base, room.iov_len, MSG_DONTWAIT);
    if (got <= 0) {
      if (total > 0) break;
      return got == 0 ? 0 : -errno;
    }
    tls_->received(static_cast<size_t>(got));
  }
  tls_flush();
  return static_cast<ssize_t>(total);
}

void NbdSession::tls_receive_later(iovec* iov, int n, Done done) {
  tls_recv_iov_ = iov;
  tls_recv_n_ = n;
  tls_recv_done_ = done;
  iovec room = tls_->inbox();
  io_uring_prep_recv(core_.ring().sqe_for(&tls_recv_op_), fd_, room.iov_base, room.iov_len, 0);
}

void NbdSession::on_tls_received(int res) {
  if (res <= 0) return (this->*tls_recv_done_)(res);
  tls_->received(static_cast<size_t>(res));
  ssize_t r = tls_receive_now(tls_recv_iov_, tls_recv_n_);
  if (r == -EAGAIN) return tls_receive_later(tls_recv_iov_, tls_recv_n_, tls_recv_done_);
  (this->*tls_recv_done_)(static_cast<int>(r));
}

// Seals the next piece of send_iov_ once the last one has gone, and sends
// it; once all has gone the replies are done with, as for plain text.
void NbdSession::tls_send() {
  if (tls_->outbox_empty()) {
    if (send_iov_first_ == send_iov_count_) {
      send_in_flight_ = false;
      return sent_all();
    }
    ssize_t took = tls_->write(send_iov_.get() + send_iov_first_,
                               send_iov_count_ - send_iov_first_, kTlsSendChunk);
    if (took < 0) {
      send_in_flight_ = false;
      end("TLS could not seal a reply");
      return sent_all();
    }
    consume_sent(static_cast<size_t>(took));
  }
  iovec out = tls_->outbox();
  io_uring_prep_send(core_.ring().sqe_for(&tls_send_op_), fd_, out.iov_base, out.iov_len,
                     MSG_NOSIGNAL);
}

void NbdSession::on_tls_sent(int res) {
  if (res <= 0) {
    send_in_flight_ = false;
    end(res == 0 ? "client stopped receiving" : std::string("send failed: ") + std::strerror(-res));
    return sent_all();
  }
  tls_->sent(static_cast<size_t>(res));
  tls_send();
}

void NbdSession::tls_flush() {
  if (send_in_flight_ || tls_->outbox_empty() || phase_ == Phase::closing) return;
  send_in_flight_ = true;
  send_iov_count_ = send_iov_first_ = 0;
  tls_send();
}

}  // namespace sve::nbd
