// A minimal Arduino.h for compiling slf1.h on the host with g++: the Print class and the types
// the encoder uses, with Serial writing to stdout. Not a simulation of a board.
#ifndef ARDUINO_SHIM_H
#define ARDUINO_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

class Print {
 public:
  virtual ~Print() {}
  virtual size_t write(uint8_t b) = 0;
  virtual size_t write(const uint8_t* buf, size_t n) {
    size_t done = 0;
    while (n--) done += write(*buf++);
    return done;
  }
  size_t print(const char* s) { return write((const uint8_t*)s, strlen(s)); }
};

class StdoutSerial : public Print {
 public:
  void begin(unsigned long) {}
  size_t write(uint8_t b) override { return fputc(b, stdout) == EOF ? 0 : 1; }
  size_t write(const uint8_t* buf, size_t n) override { return fwrite(buf, 1, n, stdout); }
};

static StdoutSerial Serial;

#endif
