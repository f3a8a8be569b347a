// SLF/1 frame encoder, header-only, for AVR Arduino (and anything with the Arduino Print class).
// Spec and golden vectors: firmware-bridges/slf1/SLF1.md, golden.json.
//
// AVR printf has no %f, so values are fixed point: fixed("temp.ds0", -325, 2) writes -3.25.
// One frame lives in a 258-byte buffer; a field that would push the frame past 255 bytes is
// rolled back and reported (false), so the caller sends what it has and starts the next frame.
//
//   slf1::Frame f;
//   f.begin('D', "uno-01", seq++, millis());
//   f.fixed("temp.ds0", 2150, 2);
//   f.send(Serial);                    // $1,D,uno-01,7,5000,temp.ds0=21.50*XXXX\r\n
#ifndef SLF1_H
#define SLF1_H

#include <Arduino.h>

#ifndef SLF1_MAX_LINE
#define SLF1_MAX_LINE 255
#endif

namespace slf1 {

// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor.
inline uint16_t crc16_update(uint16_t crc, uint8_t b) {
  crc ^= (uint16_t)b << 8;
  for (uint8_t i = 0; i < 8; i++) {
    crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
  }
  return crc;
}

inline uint16_t crc16(const char* data, size_t n) {
  uint16_t crc = 0xFFFF;
  while (n--) crc = crc16_update(crc, (uint8_t)*data++);
  return crc;
}

class Frame {
 public:
  Frame() : len_(0), full_(false) { buf_[0] = 0; }

  // Starts a frame; kind is 'D' data, 'I' info, 'L' log, 'E' error.
  void begin(char kind, const char* device_id, uint32_t seq, uint32_t uptime_ms) {
    len_ = 0;
    full_ = false;
    put('$');
    put('1');
    put(',');
    put(kind);
    put(',');
    puts(device_id);
    put(',');
    putu(seq);
    put(',');
    putu(uptime_ms);
  }

  // D frames: mantissa / 10^decimals, e.g. (-6, 2) -> -0.06, (50, 2) -> 0.50.
  bool fixed(const char* key, int32_t mantissa, uint8_t decimals) {
    uint16_t mark = open(key);
    uint32_t mag = mantissa < 0 ? (uint32_t)0 - (uint32_t)mantissa : (uint32_t)mantissa;
    if (mantissa < 0) put('-');
    uint32_t scale = 1;
    for (uint8_t i = 0; i < decimals; i++) scale *= 10;
    putu(mag / scale);
    if (decimals) {
      put('.');
      uint32_t frac = mag % scale;
      for (uint32_t s = scale / 10; s > 1 && frac < s; s /= 10) put('0');
      putu(frac);
    }
    return close(mark);
  }

  bool integer(const char* key, int32_t value) { return fixed(key, value, 0); }

  // D frames: "no reading" (a sensor that did not answer), written as `key=`.
  bool empty(const char* key) { return close(open(key)); }

  // I/L/E frames: text with $ * , = % CR LF escaped as %XX.
  bool text(const char* key, const char* value) {
    uint16_t mark = open(key);
    for (; *value; value++) {
      char c = *value;
      if (c == '$' || c == '*' || c == ',' || c == '=' || c == '%' || c == '\r' || c == '\n') {
        put('%');
        put(hex((uint8_t)c >> 4));
        put(hex((uint8_t)c & 15));
      } else {
        put(c);
      }
    }
    return close(mark);
  }

  // Appends *CRC\r\n and returns the NUL-terminated line, or nullptr if the header alone overflowed.
  const char* finish() {
    if (full_) return nullptr;
    uint16_t crc = crc16(buf_ + 1, len_ - 1);
    buf_[len_++] = '*';
    for (int8_t shift = 12; shift >= 0; shift -= 4) buf_[len_++] = hex((crc >> shift) & 15);
    buf_[len_++] = '\r';
    buf_[len_++] = '\n';
    buf_[len_] = 0;
    return buf_;
  }

  size_t send(Print& out) {
    const char* line = finish();
    if (!line) return 0;
    return out.write((const uint8_t*)line, len_);
  }

  uint16_t length() const { return len_; }

 private:
  static char hex(uint8_t v) { return (char)(v < 10 ? '0' + v : 'A' + v - 10); }

  uint16_t open(const char* key) {
    uint16_t mark = len_;
    put(',');
    puts(key);
    put('=');
    return mark;
  }

  // The frame needs 5 bytes for *CRC; a field that does not fit is taken back out.
  bool close(uint16_t mark) {
    if (full_ || len_ + 5 > SLF1_MAX_LINE) {
      len_ = mark;
      full_ = false;
      return false;
    }
    return true;
  }

  void put(char c) {
    if (len_ < SLF1_MAX_LINE) {
      buf_[len_++] = c;
    } else {
      full_ = true;
    }
  }

  void puts(const char* s) {
    while (*s) put(*s++);
  }

  void putu(uint32_t v) {
    char tmp[10];
    uint8_t n = 0;
    do {
      tmp[n++] = (char)('0' + v % 10);
      v /= 10;
    } while (v);
    while (n) put(tmp[--n]);
  }

  char buf_[SLF1_MAX_LINE + 3];  // + "\r\n" + NUL
  uint16_t len_;
  bool full_;
};

}  // namespace slf1

#endif  // SLF1_H
