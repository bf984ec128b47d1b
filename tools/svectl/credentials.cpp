// svectl's side of administrators' credentials (tools/svectl/credentials.hpp).
#include "tools/svectl/credentials.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>

namespace sve {

std::string token_path(const HostPortAddress& admin) {
  if (const char* file = std::getenv("SVE_TOKEN_FILE"); file && *file) return file;
  std::string dir;
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) dir = xdg;
  else if (const char* home = std::getenv("HOME"); home && *home) dir = std::string(home) + "/.config";
  else dir = ".";
  return dir + "/sve/token-" + admin.host + "_" + std::to_string(admin.port);
}

Result<std::string> read_password(const std::string& prompt) {
  if (const char* given = std::getenv("SVE_PASSWORD"); given && *given) return std::string(given);
  int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (tty < 0)
    return make_error("no terminal to ask the password on: set SVE_PASSWORD", ENOTTY);
  termios old{};
  bool echo_off = ::tcgetattr(tty, &old) == 0;
  if (echo_off) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(tty, TCSAFLUSH, &quiet);
  }
  (void)!::write(tty, prompt.data(), prompt.size());
  std::string password;
  char c;
  while (::read(tty, &c, 1) == 1 && c != '\n') password.push_back(c);
  if (echo_off) ::tcsetattr(tty, TCSAFLUSH, &old);
  (void)!::write(tty, "\n", 1);
  ::close(tty);
  return password;
}

Status save_token(const HostPortAddress& admin, const std::string& token) {
  std::string path = token_path(admin);
  auto slash = path.rfind('/');
  if (slash != std::string::npos) {
    std::string dir = path.substr(0, slash);
    // (Each folder of the path, the last one private.)
    for (size_t at = 1; at <= dir.size(); ++at)
      if (at == dir.size() || dir[at] == '/') ::mkdir(dir.substr(0, at).c_str(), 0700);
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot write " + path + ": " + std::strerror(errno), errno);
  ::fchmod(fd, 0600);  // (an older file may have had another mode)
  std::string line = token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!ok) return make_error("cannot write " + path, EIO);
  return ok_status();
}

std::optional<std::string> saved_token(const HostPortAddress& admin) {
  std::ifstream in(token_path(admin));
  std::string token;
  if (!in || !std::getline(in, token) || token.empty()) return std::nullopt;
  return token;
}

bool forget_token(const HostPortAddress& admin) {
  return ::unlink(token_path(admin).c_str()) == 0;
}

}  // namespace sve
