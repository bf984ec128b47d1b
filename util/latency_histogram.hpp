#pragma once
// A log-linear latency histogram (HdrHistogram's idea, small): 32 linear
// buckets per power of two of nanoseconds, so any percentile is within ~3%.
// Recording is a few instructions and never allocates.
#include <array>
#include <bit>
#include <cstdint>

namespace sve {

class LatencyHistogram {
 public:
  static constexpr unsigned kSubBits = 5;  // 32 sub-buckets
  static constexpr unsigned kBuckets = (64 - kSubBits + 1) << kSubBits;

  void record(uint64_t ns) {
    ++counts_[index(ns)];
    ++total_;
  }
  void merge(const LatencyHistogram& other) {
    for (unsigned i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
  }
  uint64_t count() const { return total_; }

  // The latency below which `fraction` (0..1) of the samples lie, in ns
  // (the upper edge of the bucket that holds it).
  uint64_t percentile(double fraction) const {
    if (total_ == 0) return 0;
    auto want = static_cast<uint64_t>(fraction * static_cast<double>(total_));
    if (want >= total_) want = total_ - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen > want) return upper_edge(i);
    }
    return upper_edge(kBuckets - 1);
  }

 private:
  static unsigned index(uint64_t ns) {
    if (ns < (1u << kSubBits)) return static_cast<unsigned>(ns);
    unsigned top = 63 - static_cast<unsigned>(std::countl_zero(ns));  // >= kSubBits
    unsigned shift = top - kSubBits;
    unsigned sub = static_cast<unsigned>(ns >> shift) & ((1u << kSubBits) - 1);
    return ((shift + 1) << kSubBits) | sub;
  }
  static uint64_t upper_edge(unsigned i) {
    unsigned group = i >> kSubBits;
    uint64_t sub = i & ((1u << kSubBits) - 1);
    if (group == 0) return sub + 1;
    unsigned shift = group - 1;
    return ((sub | (1u << kSubBits)) + 1) << shift;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t total_ = 0;
};

}  // namespace sve
