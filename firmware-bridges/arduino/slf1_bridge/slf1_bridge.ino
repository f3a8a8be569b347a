// SLF/1 bridge for AVR Arduino boards (Uno, Nano, Pro Mini: ATmega328P).
// Reads an LM35 on A0, a DHT22 on D2 and the board's supply voltage, and writes one SLF/1 D frame
// per interval on the USB serial port (115200 8N1). Wiring, flashing and configuration: README.md.
#include <Arduino.h>
#include <avr/eeprom.h>

#include "slf1.h"

// ---- configuration --------------------------------------------------------------------------
#define SLF1_BAUD 115200
#define INTERVAL_MS 10000UL
#define LM35_PIN A0             // comment out when no LM35 is fitted
#define DHT22_PIN 2             // comment out when no DHT22 is fitted
#define DEVICE_ID_EEPROM 0      // 32 bytes at this EEPROM address, provisioned once (README.md)
#define DEVICE_ID_FALLBACK "uno-unset"
static const char FW_VERSION[] = "1.0.0";
// ---------------------------------------------------------------------------------------------

static char device_id[33];
static uint32_t seq = 0;
static slf1::Frame frame;

static bool id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '-';
}

// An id provisioned into EEPROM survives reflashing, so a swapped board is recognised as such.
static void load_device_id() {
  eeprom_read_block(device_id, (const void*)DEVICE_ID_EEPROM, 32);
  device_id[32] = 0;
  uint8_t n = 0;
  while (n < 32 && id_char(device_id[n])) n++;
  if (n == 0 || (n < 32 && device_id[n] != 0)) {
    strcpy(device_id, DEVICE_ID_FALLBACK);
  }
}

// Vcc in mV from the 1.1 V bandgap measured against AVcc (ATmega328P).
static int32_t read_vcc_mv() {
  ADMUX = _BV(REFS0) | _BV(MUX3) | _BV(MUX2) | _BV(MUX1);
  delay(2);
  ADCSRA |= _BV(ADSC);
  while (bit_is_set(ADCSRA, ADSC)) {
  }
  uint16_t adc = ADC;
  return adc ? 1125300L / adc : 0;
}

#ifdef DHT22_PIN
// DHT22: a >= 1 ms low start pulse; the sensor answers 80 us low + 80 us high, then 40 bits of
// 50 us low + 26 us (0) or 70 us (1) high. Values arrive in tenths of Cel and %RH.
static bool read_dht22(uint8_t pin, int16_t* t10, uint16_t* h10) {
  uint8_t data[5] = {0, 0, 0, 0, 0};
  pinMode(pin, OUTPUT);
  digitalWrite(pin, LOW);
  delay(2);
  pinMode(pin, INPUT_PULLUP);
  if (!pulseIn(pin, HIGH, 300)) return false;  // the 80 us response: no sensor, no pulse
  for (uint8_t i = 0; i < 40; i++) {
    unsigned long high = pulseIn(pin, HIGH, 200);
    if (!high) return false;
    data[i / 8] = (uint8_t)((data[i / 8] << 1) | (high > 40 ? 1 : 0));
  }
  if ((uint8_t)(data[0] + data[1] + data[2] + data[3]) != data[4]) return false;
  *h10 = (uint16_t)((data[0] << 8) | data[1]);
  int16_t t = (int16_t)(((data[2] & 0x7F) << 8) | data[3]);
  *t10 = (data[2] & 0x80) ? -t : t;
  return true;
}
#endif

static void send_frame() {
  frame.send(Serial);
}

void setup() {
  Serial.begin(SLF1_BAUD);
  load_device_id();
  frame.begin('I', device_id, seq++, millis());
  frame.text("fw", FW_VERSION);
  frame.text("units", "temp:Cel;hum:%;vcc:V");
  send_frame();
}

void loop() {
  static uint32_t last = 0;
  static bool first = true;
  uint32_t now = millis();
  if (!first && now - last < INTERVAL_MS) return;
  first = false;
  last = now;

  int32_t vcc = read_vcc_mv();
#ifdef DHT22_PIN
  int16_t t10 = 0;
  uint16_t h10 = 0;
  bool dht_ok = read_dht22(DHT22_PIN, &t10, &h10);
  if (!dht_ok) {
    frame.begin('E', device_id, seq++, millis());
    frame.text("code", "dht_timeout");
    send_frame();
  }
#endif
  frame.begin('D', device_id, seq++, millis());
#ifdef LM35_PIN
  // LM35: 10 mV per Cel, so millivolts are tenths of Cel.
  int32_t mv = (int32_t)analogRead(LM35_PIN) * vcc / 1024;
  frame.fixed("temp.lm35", mv, 1);
#endif
#ifdef DHT22_PIN
  if (dht_ok) {
    frame.fixed("temp.dht", t10, 1);
    frame.fixed("hum.dht", h10, 1);
  } else {
    frame.empty("temp.dht");
    frame.empty("hum.dht");
  }
#endif
  frame.fixed("vcc", vcc, 3);
  send_frame();
}
