# MicroPython code: no contextlib, and %-formatting is the cheap idiom there.
# ruff: noqa: B904, BLE001, UP031
# Sensor adapters: each wraps a driver object and returns fixed-point readings
#   [(key, mantissa or None, decimals), ...]   e.g. ("temp.ds0", 2150, 2) is 21.50 Cel
# and declares UCUM units per bare key. Drivers are duck-typed so the logic runs on the host
# with fakes; on the board they are MicroPython's ds18x20/dht drivers or a machine.I2C bus.


class SensorError(Exception):
    # code is short and stable: it becomes the E frame's `code` field
    def __init__(self, code, detail=""):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


class DS18B20:
    """1-Wire thermometers; `driver` is ds18x20.DS18X20(onewire.OneWire(pin)).

    `roms` maps instance names to 8-byte ROM codes (scan() once and pin them, so ds0 stays ds0
    when a probe is added). The driver's float is 1/16 Cel steps; we send hundredths."""

    units = (("temp", "Cel"),)
    conversion_ms = 750

    def __init__(self, driver, roms):
        self.driver = driver
        self.roms = roms

    def start(self):
        self.driver.convert_temp()

    def read(self):
        out = []
        for name, rom in self.roms:
            try:
                t = self.driver.read_temp(rom)
            except Exception:  # scratchpad CRC error or probe gone: report "no reading"
                t = None
            if t is None:
                out.append(("temp." + name, None, 2))
            else:
                out.append(("temp." + name, _round(t * 100), 2))
        return out


class DHT22:
    """Temperature and humidity; `driver` is dht.DHT22(machine.Pin(n)). 0.1 resolution."""

    units = (("temp", "Cel"), ("hum", "%"))
    conversion_ms = 0

    def __init__(self, driver, name="dht"):
        self.driver = driver
        self.name = name

    def start(self):
        pass

    def read(self):
        try:
            self.driver.measure()
        except OSError as exc:
            raise SensorError("dht_timeout", str(exc))
        return [("temp." + self.name, _round(self.driver.temperature() * 10), 1),
                ("hum." + self.name, _round(self.driver.humidity() * 10), 1)]


def _round(x):
    # round half away from zero, on floats that may be single precision
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


class BME280:
    """Bosch BME280 over I2C with the datasheet's integer compensation (section 4.2.3).

    `i2c` needs readfrom_mem(addr, reg, n) and writeto_mem(addr, reg, buf) (machine.I2C).
    Temperature in hundredths of Cel, pressure in hundredths of hPa (= Pa), humidity in
    hundredths of %RH."""

    units = (("temp", "Cel"), ("press", "hPa"), ("hum", "%"))
    conversion_ms = 0

    def __init__(self, i2c, address=0x76, name="bme"):
        self.i2c = i2c
        self.address = address
        self.name = name
        chip = self.i2c.readfrom_mem(address, 0xD0, 1)[0]
        if chip != 0x60:
            raise SensorError("bme280_id", "chip id 0x%02x" % chip)
        c = self.i2c.readfrom_mem(address, 0x88, 26)
        h = self.i2c.readfrom_mem(address, 0xE1, 7)
        self.t1 = _u16(c, 0)
        self.t2 = _s16(c, 2)
        self.t3 = _s16(c, 4)
        self.p = [_u16(c, 6)] + [_s16(c, 8 + 2 * i) for i in range(8)]
        self.h1 = c[25]
        self.h2 = _s16(h, 0)
        self.h3 = h[2]
        self.h4 = _s8(h[3]) * 16 | (h[4] & 0x0F)
        self.h5 = _s8(h[5]) * 16 | (h[4] >> 4)
        self.h6 = _s8(h[6])
        # humidity x1, then temperature x1 / pressure x1 in forced mode
        self.i2c.writeto_mem(address, 0xF2, b"\x01")

    def start(self):
        self.i2c.writeto_mem(self.address, 0xF4, b"\x25")  # osrs_t=1, osrs_p=1, forced

    def read(self):
        d = self.i2c.readfrom_mem(self.address, 0xF7, 8)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        if adc_t == 0x80000:
            raise SensorError("bme280_skipped")
        t_fine, temp = self._temp(adc_t)
        return [("temp." + self.name, temp, 2),
                ("press." + self.name, self._press(adc_p, t_fine), 2),
                ("hum." + self.name, self._hum(adc_h, t_fine), 2)]

    def _temp(self, adc_t):
        var1 = (((adc_t >> 3) - (self.t1 << 1)) * self.t2) >> 11
        var2 = (((((adc_t >> 4) - self.t1) * ((adc_t >> 4) - self.t1)) >> 12) * self.t3) >> 14
        t_fine = var1 + var2
        return t_fine, (t_fine * 5 + 128) >> 8

    def _press(self, adc_p, t_fine):
        p1, p2, p3, p4, p5, p6, p7, p8, p9 = self.p
        var1 = t_fine - 128000
        var2 = var1 * var1 * p6
        var2 = var2 + ((var1 * p5) << 17)
        var2 = var2 + (p4 << 35)
        var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
        var1 = (((1 << 47) + var1) * p1) >> 33
        if var1 == 0:
            return None
        p = 1048576 - adc_p
        p = (((p << 31) - var2) * 3125) // var1
        var1 = (p9 * (p >> 13) * (p >> 13)) >> 25
        var2 = (p8 * p) >> 19
        p = ((p + var1 + var2) >> 8) + (p7 << 4)  # Pa in Q24.8
        return (p * 100 // 256 + 50) // 100  # Pa == hundredths of hPa

    def _hum(self, adc_h, t_fine):
        v = t_fine - 76800
        v = (((((adc_h << 14) - (self.h4 << 20) - (self.h5 * v)) + 16384) >> 15) *
             (((((((v * self.h6) >> 10) * (((v * self.h3) >> 11) + 32768)) >> 10) + 2097152) *
               self.h2 + 8192) >> 14))
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * self.h1) >> 4)
        v = 0 if v < 0 else v
        v = 419430400 if v > 419430400 else v
        return ((v >> 12) * 100 + 512) >> 10  # %RH in Q22.10 -> hundredths


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _s16(b, i):
    v = _u16(b, i)
    return v - 65536 if v > 32767 else v


def _s8(v):
    return v - 256 if v > 127 else v
