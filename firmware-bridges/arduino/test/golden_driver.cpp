// Host driver for slf1.h: reads commands on stdin (generated from golden.json by
// tests/firmware/test_arduino.py) and writes the frames to stdout through the Print shim.
//   B kind device_id seq uptime     begin a frame
//   X key mantissa decimals          fixed-point field  (on a full frame: send, begin seq+1, retry)
//   N key                            empty field
//   T key hex                        text field (hex so any byte can be given)
//   S                                send
//   C hex                            print the CRC-16 of the bytes as 4 hex digits and \n
#include <Arduino.h>
#include <stdlib.h>

#include "slf1.h"

static void unhex(const char* hex, char* out) {
  size_t n = strlen(hex) / 2;
  for (size_t i = 0; i < n; i++) {
    char pair[3] = {hex[2 * i], hex[2 * i + 1], 0};
    out[i] = (char)strtol(pair, nullptr, 16);
  }
  out[n] = 0;
}

int main() {
  slf1::Frame frame;
  char line[1024], a[512], b[512], kind;
  char device[64];
  unsigned long seq = 0, uptime = 0;
  while (fgets(line, sizeof line, stdin)) {
    long m;
    int d;
    if (sscanf(line, "B %c %63s %lu %lu", &kind, device, &seq, &uptime) == 4) {
      frame.begin(kind, device, (uint32_t)seq, (uint32_t)uptime);
    } else if (sscanf(line, "X %511s %ld %d", a, &m, &d) == 3) {
      if (!frame.fixed(a, (int32_t)m, (uint8_t)d)) {
        frame.send(Serial);
        frame.begin(kind, device, (uint32_t)++seq, (uint32_t)uptime);
        if (!frame.fixed(a, (int32_t)m, (uint8_t)d)) return 2;
      }
    } else if (sscanf(line, "N %511s", a) == 1) {
      frame.empty(a);
    } else if (sscanf(line, "T %511s %511s", a, b) == 2) {
      char text[256];
      unhex(b, text);
      frame.text(a, text);
    } else if (sscanf(line, "T %511s", a) == 1) {
      frame.text(a, "");
    } else if (line[0] == 'S') {
      frame.send(Serial);
    } else if (sscanf(line, "C %511s", a) == 1) {
      char data[256];
      unhex(a, data);
      printf("%04X\n", slf1::crc16(data, strlen(data)));
    } else {
      return 1;
    }
  }
  return 0;
}
