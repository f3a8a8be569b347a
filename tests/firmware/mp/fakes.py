# MicroPython code: no contextlib, and %-formatting is the cheap idiom there.
# ruff: noqa: UP031
# Fake sensor drivers (the chip side), so the real adapters in sensors.py run on the host.


class FakeDS18X20:
    def __init__(self, temps):
        self.temps = temps  # rom -> float Cel, or None for a probe that fails its CRC
        self.conversions = 0

    def convert_temp(self):
        self.conversions += 1

    def read_temp(self, rom):
        t = self.temps[rom]
        if t is None:
            raise Exception("CRC error")
        return t


class FakeDHT22:
    def __init__(self, temp, hum, fail_every=0):
        self.temp = temp
        self.hum = hum
        self.fail_every = fail_every
        self.calls = 0

    def measure(self):
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise OSError(110)  # ETIMEDOUT, what dht.DHT22.measure raises on a dead line

    def temperature(self):
        return self.temp

    def humidity(self):
        return self.hum


class FakeI2C:
    """A BME280 register map: calibration words, chip id, raw ADC values."""

    def __init__(self, address, cal, adc_t, adc_p, adc_h):
        self.address = address
        self.mem = bytearray(256)
        self.mem[0xD0] = 0x60
        words = [cal["T1"], cal["T2"], cal["T3"]] + [cal["P%d" % i] for i in range(1, 10)]
        for i, w in enumerate(words):
            w &= 0xFFFF
            self.mem[0x88 + 2 * i] = w & 0xFF
            self.mem[0x89 + 2 * i] = w >> 8
        self.mem[0xA1] = cal["H1"]
        self.mem[0xE1] = cal["H2"] & 0xFF
        self.mem[0xE2] = (cal["H2"] & 0xFFFF) >> 8
        self.mem[0xE3] = cal["H3"]
        self.mem[0xE4] = (cal["H4"] >> 4) & 0xFF
        self.mem[0xE5] = (cal["H4"] & 0x0F) | ((cal["H5"] & 0x0F) << 4)
        self.mem[0xE6] = (cal["H5"] >> 4) & 0xFF
        self.mem[0xE7] = cal["H6"] & 0xFF
        self.mem[0xF7] = adc_p >> 12
        self.mem[0xF8] = (adc_p >> 4) & 0xFF
        self.mem[0xF9] = (adc_p & 0x0F) << 4
        self.mem[0xFA] = adc_t >> 12
        self.mem[0xFB] = (adc_t >> 4) & 0xFF
        self.mem[0xFC] = (adc_t & 0x0F) << 4
        self.mem[0xFD] = adc_h >> 8
        self.mem[0xFE] = adc_h & 0xFF
        self.writes = []

    def readfrom_mem(self, addr, reg, n):
        assert addr == self.address
        return bytes(self.mem[reg:reg + n])

    def writeto_mem(self, addr, reg, buf):
        assert addr == self.address
        self.writes.append((reg, bytes(buf)))
