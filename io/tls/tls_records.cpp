// A TLS connection's record layer driven from memory (io/tls/tls_records.hpp).
#include "io/tls/tls_records.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/tls/tls_session_impl.hpp"

namespace sve {
namespace {

// Ciphertext taken from the socket at a time: room for a few records of the
// largest size (16 KiB of plain text and their overhead).
constexpr size_t kInboxBytes = 64 * 1024;
constexpr size_t kRecordBytes = 16 * 1024 + 512;

}  // namespace

// GnuTLS's transport, on the inbox and outbox instead of a socket.
struct TlsRecords::Impl {
  static gnutls_session_t gnutls(TlsRecords* self) { return self->session_->impl_->session; }

  // Ciphertext for GnuTLS, or EAGAIN: the session receives more first.
  static ssize_t pull(gnutls_transport_ptr_t p, void* data, size_t size) {
    auto* self = static_cast<TlsRecords*>(p);
    size_t have = self->in_to_ - self->in_from_;
    if (have == 0) {
      gnutls_transport_set_errno(gnutls(self), EAGAIN);
      return -1;
    }
    size_t n = std::min(size, have);
    std::memcpy(data, self->in_.data() + self->in_from_, n);
    self->in_from_ += n;
    return static_cast<ssize_t>(n);
  }
  static int pull_timeout(gnutls_transport_ptr_t p, unsigned /*ms*/) {
    auto* self = static_cast<TlsRecords*>(p);
    if (self->in_to_ > self->in_from_) return 1;
    gnutls_transport_set_errno(gnutls(self), EAGAIN);
    return -1;
  }
  // Sealed records, kept until the session's ring has sent them.
  static ssize_t push(gnutls_transport_ptr_t p, const giovec_t* iov, int n) {
    auto* self = static_cast<TlsRecords*>(p);
    size_t total = 0;
    for (int i = 0; i < n; ++i) {
      const auto* from = static_cast<const uint8_t*>(iov[i].iov_base);
      self->out_.insert(self->out_.end(), from, from + iov[i].iov_len);
      total += iov[i].iov_len;
    }
    return static_cast<ssize_t>(total);
  }
};

TlsRecords::TlsRecords(std::shared_ptr<TlsSession> session)
    : session_(std::move(session)), in_(kInboxBytes) {
  gnutls_session_t s = Impl::gnutls(this);
  gnutls_transport_set_ptr(s, this);
  gnutls_transport_set_pull_function(s, &Impl::pull);
  gnutls_transport_set_pull_timeout_function(s, &Impl::pull_timeout);
  gnutls_transport_set_vec_push_function(s, &Impl::push);
}

TlsRecords::~TlsRecords() = default;

ssize_t TlsRecords::read(const iovec* iov, int n) {
  gnutls_session_t s = Impl::gnutls(this);
  size_t total = 0;
  for (int i = 0; i < n; ++i) {
    auto* to = static_cast<uint8_t*>(iov[i].iov_base);
    size_t left = iov[i].iov_len;
    while (left > 0) {
      ssize_t r = gnutls_record_recv(s, to, left);
      if (r > 0) {
        to += r;
        left -= static_cast<size_t>(r);
        total += static_cast<size_t>(r);
        continue;
      }
      if (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_WARNING_ALERT_RECEIVED) continue;
      // What came is handed over; the end or the failure shows next time.
      if (total > 0) return static_cast<ssize_t>(total);
      if (r == GNUTLS_E_AGAIN) return -EAGAIN;
      if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION) return 0;
      return -EPROTO;  // a record that fails its check; a renegotiation
    }
  }
  return static_cast<ssize_t>(total);
}

iovec TlsRecords::inbox() {
  if (in_from_ == in_to_) {
    in_from_ = in_to_ = 0;
  } else if (in_.size() - in_to_ < kRecordBytes) {
    std::memmove(in_.data(), in_.data() + in_from_, in_to_ - in_from_);
    in_to_ -= in_from_;
    in_from_ = 0;
  }
  return {in_.data() + in_to_, in_.size() - in_to_};
}

void TlsRecords::received(size_t n) { in_to_ += std::min(n, in_.size() - in_to_); }

ssize_t TlsRecords::write(const iovec* iov, int n, size_t max) {
  gnutls_session_t s = Impl::gnutls(this);
  // Corked, small pieces (a reply's header and its data) share records.
  gnutls_record_cork(s);
  size_t taken = 0;
  for (int i = 0; i < n && taken < max; ++i) {
    const auto* from = static_cast<const uint8_t*>(iov[i].iov_base);
    size_t left = std::min(iov[i].iov_len, max - taken);
    while (left > 0) {
      ssize_t r = gnutls_record_send(s, from, left);
      if (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN) continue;
      if (r < 0) return -EPROTO;
      from += r;
      left -= static_cast<size_t>(r);
      taken += static_cast<size_t>(r);
    }
  }
  int r;
  do {  // (the push never fails: everything is sealed here and now)
    r = gnutls_record_uncork(s, GNUTLS_RECORD_WAIT);
  } while (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN);
  return r < 0 ? -EPROTO : static_cast<ssize_t>(taken);
}

void TlsRecords::close() { gnutls_bye(Impl::gnutls(this), GNUTLS_SHUT_WR); }

iovec TlsRecords::outbox() const {
  return {const_cast<uint8_t*>(out_.data()) + out_from_, out_.size() - out_from_};
}

void TlsRecords::sent(size_t n) {
  out_from_ += std::min(n, out_.size() - out_from_);
  if (out_from_ == out_.size()) {
    out_.clear();
    out_from_ = 0;
  }
}

}  // namespace sve
