#pragma once
// NBD wire format (NetworkBlockDevice/nbd doc/proto.md): constants and the
// encoding of the messages SVE sends and parses. All integers are big-endian.
#include <cstdint>
#include <string>
#include <vector>

namespace sve::nbd {

inline constexpr uint64_t kNbdMagic = 0x4e42444d41474943ull;   // "NBDMAGIC"
inline constexpr uint64_t kOptMagic = 0x49484156454F5054ull;   // "IHAVEOPT"
inline constexpr uint64_t kOptReplyMagic = 0x3e889045565a9ull;
inline constexpr uint32_t kRequestMagic = 0x25609513u;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698u;
inline constexpr uint32_t kStructuredReplyMagic = 0x668e33efu;

// Handshake flags (server) and client flags.
inline constexpr uint16_t kFlagFixedNewstyle = 1 << 0;
inline constexpr uint16_t kFlagNoZeroes = 1 << 1;
inline constexpr uint32_t kClientFixedNewstyle = 1 << 0;
inline constexpr uint32_t kClientNoZeroes = 1 << 1;

// Options.
inline constexpr uint32_t kOptExportName = 1;
inline constexpr uint32_t kOptAbort = 2;
inline constexpr uint32_t kOptList = 3;
inline constexpr uint32_t kOptStartTls = 5;
inline constexpr uint32_t kOptInfo = 6;
inline constexpr uint32_t kOptGo = 7;
inline constexpr uint32_t kOptStructuredReply = 8;
inline constexpr uint32_t kOptListMetaContext = 9;
inline constexpr uint32_t kOptSetMetaContext = 10;

// Option replies.
inline constexpr uint32_t kRepAck = 1;
inline constexpr uint32_t kRepServer = 2;
inline constexpr uint32_t kRepInfo = 3;
inline constexpr uint32_t kRepMetaContext = 4;
inline constexpr uint32_t kRepErrUnsup = 0x80000001u;
inline constexpr uint32_t kRepErrPolicy = 0x80000002u;
inline constexpr uint32_t kRepErrInvalid = 0x80000003u;
inline constexpr uint32_t kRepErrTlsReqd = 0x80000005u;
inline constexpr uint32_t kRepErrUnknown = 0x80000006u;

// NBD_OPT_INFO / NBD_OPT_GO information types.
inline constexpr uint16_t kInfoExport = 0;
inline constexpr uint16_t kInfoName = 1;
inline constexpr uint16_t kInfoDescription = 2;
inline constexpr uint16_t kInfoBlockSize = 3;

// Transmission flags.
inline constexpr uint16_t kTxHasFlags = 1 << 0;
inline constexpr uint16_t kTxReadOnly = 1 << 1;
inline constexpr uint16_t kTxSendFlush = 1 << 2;
inline constexpr uint16_t kTxSendFua = 1 << 3;
inline constexpr uint16_t kTxSendTrim = 1 << 5;
inline constexpr uint16_t kTxSendWriteZeroes = 1 << 6;
inline constexpr uint16_t kTxSendDf = 1 << 7;  // only with structured replies
inline constexpr uint16_t kTxCanMultiConn = 1 << 8;
inline constexpr uint16_t kTxSendCache = 1 << 10;
inline constexpr uint16_t kTxSendFastZero = 1 << 11;

// Commands and command flags.
inline constexpr uint16_t kCmdRead = 0;
inline constexpr uint16_t kCmdWrite = 1;
inline constexpr uint16_t kCmdDisc = 2;
inline constexpr uint16_t kCmdFlush = 3;
inline constexpr uint16_t kCmdTrim = 4;
inline constexpr uint16_t kCmdCache = 5;
inline constexpr uint16_t kCmdWriteZeroes = 6;
inline constexpr uint16_t kCmdBlockStatus = 7;
inline constexpr uint16_t kCmdFlagFua = 1 << 0;
inline constexpr uint16_t kCmdFlagNoHole = 1 << 1;
inline constexpr uint16_t kCmdFlagDf = 1 << 2;
inline constexpr uint16_t kCmdFlagReqOne = 1 << 3;
inline constexpr uint16_t kCmdFlagFastZero = 1 << 4;

// Structured reply chunks: flags and types.
inline constexpr uint16_t kReplyFlagDone = 1 << 0;
inline constexpr uint16_t kReplyTypeNone = 0;
inline constexpr uint16_t kReplyTypeOffsetData = 1;
inline constexpr uint16_t kReplyTypeOffsetHole = 2;
inline constexpr uint16_t kReplyTypeBlockStatus = 5;
inline constexpr uint16_t kReplyTypeError = (1 << 15) | 1;

// The one metadata context: which ranges hold data (base:allocation).
inline constexpr char kContextBaseAllocation[] = "base:allocation";
inline constexpr uint32_t kStateHole = 1 << 0;
inline constexpr uint32_t kStateZero = 1 << 1;

// Error values on the wire.
inline constexpr uint32_t kEPERM = 1;
inline constexpr uint32_t kEIO = 5;
inline constexpr uint32_t kENOMEM = 12;
inline constexpr uint32_t kEINVAL = 22;
inline constexpr uint32_t kENOSPC = 28;
inline constexpr uint32_t kEOVERFLOW = 75;
inline constexpr uint32_t kENOTSUP = 95;  // only for a FAST_ZERO write-zeroes
inline constexpr uint32_t kESHUTDOWN = 108;

// Largest payload SVE accepts in one request (advertised as the maximum
// block size). A larger read is refused with EINVAL; a larger write's
// payload is read and dropped, then refused: the connection stays.
inline constexpr uint32_t kMaxPayloadBytes = 32u << 20;
inline constexpr uint32_t kMaxOptionBytes = 64u << 10;
inline constexpr uint32_t kMaxStringBytes = 4096;  // names, queries, messages
inline constexpr size_t kRequestBytes = 28;
inline constexpr size_t kReplyBytes = 16;
inline constexpr size_t kChunkHeaderBytes = 20;  // a structured reply chunk's header

struct Request {
  uint32_t magic = 0;
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
};

Request decode_request(const uint8_t* bytes);  // kRequestBytes
void encode_request(const Request& r, uint8_t* out);
void encode_simple_reply(uint32_t error, uint64_t cookie, uint8_t* out);  // kReplyBytes
// A structured reply chunk's header (kChunkHeaderBytes); `length` counts
// what follows it.
void encode_chunk_header(uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length,
                         uint8_t* out);

// The payloads of the chunks SVE sends, each after its header.
// OFFSET_DATA's: the offset (8 bytes), then the data.
inline constexpr size_t kOffsetDataBytes = 8;
void encode_offset(uint64_t offset, uint8_t* out);
// BLOCK_STATUS: the context id, then (length, flags) per extent.
struct Extent {
  uint32_t length = 0;
  uint32_t flags = 0;
};
std::vector<uint8_t> encode_block_status(uint32_t context, const std::vector<Extent>& extents);
// ERROR: the error, and a message for humans.
std::vector<uint8_t> encode_error_chunk(uint32_t error, const std::string& message);

// The data of NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT:
// u32 export name length, name, u32 query count, per query u32 length
// and the query. False if it does not parse (or a string is too long).
struct MetaContextRequest {
  std::string export_name;
  std::vector<std::string> queries;
};
bool decode_meta_context_request(const std::vector<uint8_t>& data, MetaContextRequest& out);

// Everything the server sends during option haggling.
std::vector<uint8_t> encode_option_reply(uint32_t option, uint32_t type,
                                         const std::vector<uint8_t>& data);
std::vector<uint8_t> encode_info_export(uint64_t size, uint16_t flags);
std::vector<uint8_t> encode_info_block_size(uint32_t min, uint32_t preferred, uint32_t max);

// Maps an errno from the stack to the NBD error set; `is_write` selects
// ENOSPC for a range beyond the end (the spec's rule for writes).
uint32_t to_wire_error(int status, bool is_write);

// Big-endian helpers.
void put_u16(std::vector<uint8_t>& out, uint16_t v);
void put_u32(std::vector<uint8_t>& out, uint32_t v);
void put_u64(std::vector<uint8_t>& out, uint64_t v);
uint16_t get_u16(const uint8_t* p);
uint32_t get_u32(const uint8_t* p);
uint64_t get_u64(const uint8_t* p);

}  // namespace sve::nbd
