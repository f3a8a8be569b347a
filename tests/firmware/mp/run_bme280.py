# micropython run_bme280.py: the BME280 adapter on a fake register map; prints readings as JSON.
import json

import sensors
from fakes import FakeI2C

# Calibration and raw values from the Bosch BMP280 datasheet's worked example (section 3.12),
# plus typical BME280 humidity trimming values.
CAL = {"T1": 27504, "T2": 26435, "T3": -1000, "P1": 36477, "P2": -10685, "P3": 3024, "P4": 2855,
       "P5": 140, "P6": -7, "P7": 15500, "P8": -14600, "P9": 6000,
       "H1": 75, "H2": 362, "H3": 0, "H4": 313, "H5": 50, "H6": 30}
bus = FakeI2C(0x76, CAL, adc_t=519888, adc_p=415148, adc_h=30000)
bme = sensors.BME280(bus, 0x76, "bme")
bme.start()
print(json.dumps({"readings": bme.read(), "writes": [[r, list(b)] for r, b in bus.writes], "cal": CAL}))
