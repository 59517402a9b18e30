# The status LED and the service-pin button.
#
# LED patterns (emulator choice), one period of PERIOD_MS:
#   booting            on
#   not commissioned   1 Hz, half on
#   commissioned       a 60 ms blip every 2 s
#   fault (flash)      5 Hz
# plus a 30 ms flicker after each answered request.
# The button is sampled every loop; it counts as pressed after it has read
# active for DEBOUNCE_MS without a break, and must be released (as long)
# before it counts again. A press sends the 14908-1 service-pin message.
import machine

DEBOUNCE_MS = 50
BOOT, FRESH, COMMISSIONED, FAULT = 0, 1, 2, 3


class Status:
    __slots__ = ("led", "button", "active", "state", "_level", "_since", "_pressed",
                 "_flicker", "_lit")

    def __init__(self, board, now):
        led = board.get("led")
        self.led = machine.Pin(led, machine.Pin.OUT) if led is not None else None
        b = board.get("button")
        self.button = machine.Pin(b, machine.Pin.IN, machine.Pin.PULL_UP) if b is not None else None
        self.active = board.get("button_active", 0)
        self.state = BOOT
        self._level = 0           # debounced: 1 = pressed
        self._since = now         # when the raw reading last differed from _level
        self._pressed = False
        self._flicker = None
        self._lit = None
        self._set(1)

    def _set(self, on):
        if self.led is not None and on != self._lit:
            self._lit = on
            self.led.value(on)

    def activity(self, now):
        self._flicker = now + 30

    def update(self, now):
        """Drive the LED; True once per debounced press of the button."""
        s = self.state
        if self._flicker is not None and now < self._flicker:
            on = 1 - self._pattern(s, now)
        else:
            self._flicker = None
            on = self._pattern(s, now)
        self._set(on)
        if self.button is None:
            return False
        raw = 1 if self.button.value() == self.active else 0
        if raw == self._level:
            self._since = now
            return False
        if now - self._since < DEBOUNCE_MS:
            return False
        self._level = raw
        self._since = now
        return raw == 1

    @staticmethod
    def _pattern(s, now):
        if s == BOOT:
            return 1
        if s == FRESH:
            return 1 if now % 1000 < 500 else 0
        if s == FAULT:
            return 1 if now % 200 < 100 else 0
        return 1 if now % 2000 < 60 else 0
