"""Keyboard controls of `cosmos-policy-ros record --hardware` (ROS-free).

`KeyReader` reads keys from a terminal in cbreak mode (each key arrives without Enter; Ctrl-C
still interrupts) or from a pipe; `parse_keys` turns bytes into key names, escape sequences
included (foot pedals usually type a letter, Enter or Page Down). `RecordControls` maps keys to
recorder actions through any object with `start() -> str`, `stop() -> dict` and
`discard() -> str`; the ROS side lives in commands/record.py.
"""
import os
import select
from dataclasses import dataclass, field

# Escape sequences of the named keys a pedal or a keyboard sends (xterm/VT220, as Linux consoles).
_SEQUENCES = {
    b'\x1b[5~': 'pageup', b'\x1b[6~': 'pagedown', b'\x1b[A': 'up', b'\x1b[B': 'down',
    b'\x1b[C': 'right', b'\x1b[D': 'left', b'\x1b[H': 'home', b'\x1b[F': 'end',
    b'\x1bOP': 'f1', b'\x1bOQ': 'f2', b'\x1bOR': 'f3', b'\x1bOS': 'f4',
    b'\x1b[15~': 'f5', b'\x1b[17~': 'f6', b'\x1b[18~': 'f7', b'\x1b[19~': 'f8',
    b'\x1b[20~': 'f9', b'\x1b[21~': 'f10', b'\x1b[23~': 'f11', b'\x1b[24~': 'f12',
}
_SINGLE = {b' ': 'space', b'\r': 'enter', b'\n': 'enter', b'\t': 'tab', b'\x7f': 'backspace',
           b'\x08': 'backspace', b'\x1b': 'escape', b'\x04': 'ctrl-d'}
KEY_NAMES = tuple(sorted(set(_SEQUENCES.values()) | set(_SINGLE.values())))

START_STOP_KEYS = ('space', 's')
DISCARD_KEYS = ('d', 'backspace')
QUIT_KEYS = ('q', 'ctrl-d')
HELP_KEYS = ('h', '?')


def check_key_name(name: str) -> str:
    """A pedal key as typed on the command line: one character or a KEY_NAMES name."""
    lowered = name.strip().lower()
    if len(lowered) == 1 and lowered.isprintable() and lowered != ' ':
        return lowered
    if lowered in KEY_NAMES:
        return lowered
    raise ValueError(f'unknown key {name!r}: give one character or one of {list(KEY_NAMES)}')


def parse_keys(data: bytes) -> list:
    """Key names in `data`: printable characters lowercased, the keys of KEY_NAMES by name;
    unknown escape sequences are dropped whole."""
    keys, i = [], 0
    while i < len(data):
        if data[i:i + 1] == b'\x1b' and data[i + 1:i + 2] in (b'[', b'O'):
            end = i + 2
            if data[i + 1:i + 2] == b'[':            # CSI: parameters, then a final byte
                while end < len(data) and not 0x40 <= data[end] <= 0x7e:
                    end += 1
            sequence = data[i:end + 1]
            if sequence in _SEQUENCES:
                keys.append(_SEQUENCES[sequence])
            i = end + 1
            continue
        byte = data[i:i + 1]
        if byte in _SINGLE:
            if not (byte == b'\n' and data[i - 1:i] == b'\r' and i > 0):   # CR LF is one Enter
                keys.append(_SINGLE[byte])
        elif 0x20 < data[i] < 0x7f:
            keys.append(byte.decode().lower())
        i += 1
    return keys


class KeyReader:
    """Keys from a file descriptor: cbreak mode on a terminal (restored on exit), as is from a
    pipe. `read(timeout)` returns the keys that arrived ([] on timeout) or None at end of input."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.is_tty = os.isatty(self.fd)
        self._saved = None

    def __enter__(self) -> 'KeyReader':
        if self.is_tty:
            import termios
            import tty
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self, timeout: float):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        data = os.read(self.fd, 256)
        return parse_keys(data) if data else None


@dataclass
class RecordControls:
    """Start, stop-and-save, discard and quit, one key at a time.

    space / s (or the pedal key): start an episode, or stop and save the one being recorded;
    d / backspace: discard the episode being recorded; q / Ctrl-D: quit (an episode being
    recorded is saved first); h / ?: help. `handle` returns False once the operator quits.
    """
    recorder: object
    pedal_key: str = ''
    say: object = print
    recording: bool = False
    saved: list = field(default_factory=list)      # summaries of the saved episodes
    discarded: list = field(default_factory=list)

    def help_text(self) -> str:
        pedal = f' (pedal: {self.pedal_key})' if self.pedal_key else ''
        return (f'keys: [space]/[s]{pedal} start, or stop and save; [d] discard the episode; '
                '[q] quit (saves an episode being recorded); [h] help')

    def handle(self, key: str) -> bool:
        if key in START_STOP_KEYS or (self.pedal_key and key == self.pedal_key):
            self.stop() if self.recording else self.start()
        elif key in DISCARD_KEYS:
            if self.recording:
                name = self.recorder.discard()
                self.recording = False
                self.discarded.append(name)
                self.say(f'discarded: {name}')
            else:
                self.say('nothing to discard: no episode is being recorded')
        elif key in QUIT_KEYS:
            if self.recording:
                self.stop()
            return False
        elif key in HELP_KEYS:
            self.say(self.help_text())
        return True

    def start(self) -> None:
        name = self.recorder.start()
        self.recording = True
        self.say(f'recording {name}: [space] stop and save, [d] discard')

    def stop(self) -> None:
        summary = self.recorder.stop()
        self.recording = False
        self.saved.append(summary)
        self.say(f'saved {summary.get("episode", "")}: {summary.get("duration_s", 0.0):.1f} s, '
                 f'{summary.get("messages", 0)} messages ({len(self.saved)} saved)')
