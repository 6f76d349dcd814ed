"""The node's thermometer: what ExtendVote attaches to this validator's votes.

Linux exposes temperatures under /sys/class/thermal (thermal zones, millidegrees Celsius) and
/sys/class/hwmon; the hottest readable one is reported. Machines without sensors (VMs, containers)
report the configured value. Power has no portable source, so it is always the configured value.
"""

import glob

from chain.heat import HeatReading
from node.app_config import DEFAULT_MILLICELSIUS, DEFAULT_MILLIWATTS

SENSOR_GLOBS = ("/sys/class/thermal/thermal_zone*/temp", "/sys/class/hwmon/hwmon*/temp*_input")


def read_host_millicelsius() -> int | None:
    readings = []
    for pattern in SENSOR_GLOBS:
        for path in glob.glob(pattern):
            try:
                with open(path) as file:
                    readings.append(int(file.read().strip()))
            except (OSError, ValueError):
                continue
    return max(readings) if readings else None


def make_heat_sensor(millicelsius: int = DEFAULT_MILLICELSIUS, milliwatts: int = DEFAULT_MILLIWATTS):
    """A callable for App(heat_sensor=...): the host's temperature where it has one, else the configured."""

    def sensor() -> HeatReading:
        measured = read_host_millicelsius()
        return HeatReading(measured if measured is not None else millicelsius, milliwatts)

    return sensor
