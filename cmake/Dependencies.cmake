# Every dependency is a Debian package (scripts/install-deps.sh); nothing is
# downloaded at build time.
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(spdlog REQUIRED)
find_package(msgpack REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
# ISA-L: CRC-32C (its crc32_iscsi) folded with carry-less multiplies, about
# five times the speed of a one-instruction-a-word SSE 4.2 loop on 4 KiB.
pkg_check_modules(ISAL REQUIRED IMPORTED_TARGET libisal)

# CAF 0.17 ships neither a CMake config nor a pkg-config file.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
add_library(caf::core UNKNOWN IMPORTED)
set_target_properties(caf::core PROPERTIES
  IMPORTED_LOCATION ${CAF_CORE_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${CAF_INCLUDE_DIR}
  INTERFACE_LINK_LIBRARIES Threads::Threads)
# The middleman: CAF's networking, which carries the cluster protocol.
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(caf::io UNKNOWN IMPORTED)
set_target_properties(caf::io PROPERTIES
  IMPORTED_LOCATION ${CAF_IO_LIBRARY}
  INTERFACE_LINK_LIBRARIES caf::core)

# libedit (BSD): line editing and history for svectl shell.
find_path(EDIT_INCLUDE_DIR editline/readline.h REQUIRED)
find_library(EDIT_LIBRARY edit REQUIRED)

# CLI11 (header-only): the command lines of sved and svectl.
find_package(CLI11 2 REQUIRED)

# GnuTLS (libgnutls28-dev): TLS for the host ports, with pre-shared keys as
# nbdkit, qemu and libnbd use them (docs/security.md).
pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET gnutls)

# libsodium (libsodium-dev): administrators' passwords as Argon2id hashes
# (crypto_pwhash_str) and the HMACs of their session tokens, rather than
# hand-written crypto.
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)

# cpp-httplib (libcpp-httplib-dev, built with OpenSSL): the REST API beside the
# admin line protocol, HTTP or HTTPS, rather than a hand-written HTTP server.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
