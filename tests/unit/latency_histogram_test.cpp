#include <catch2/catch.hpp>

#include "util/latency_histogram.hpp"

using sve::LatencyHistogram;

TEST_CASE("latency percentiles are within the bucket resolution", "[bench]") {
  LatencyHistogram h;
  for (uint64_t ns = 1; ns <= 100000; ++ns) h.record(ns);  // uniform 1 ns .. 100 us
  CHECK(h.count() == 100000);
  auto near = [](uint64_t got, double want) { return got >= want && got <= want * 1.04; };
  CHECK(near(h.percentile(0.5), 50000));
  CHECK(near(h.percentile(0.99), 99000));
  CHECK(near(h.percentile(0.999), 99900));
  CHECK(h.percentile(0.0) <= 2);
  LatencyHistogram other;
  other.record(1000000000);  // one second
  h.merge(other);
  CHECK(h.count() == 100001);
  CHECK(near(h.percentile(1.0), 1e9));
}
