"""Exit codes and the one error type of the `ionto` commands.

Every failure a user can meet ends as one line on stderr, `ionto CMD: error: what is wrong;
what to do`, and one of these exit codes (documented in README.md and docs/technician_guide.md):

    0  EXIT_OK         done
    1  EXIT_INTERNAL   unexpected error (a bug): still one line, no traceback
    2  EXIT_USAGE      bad arguments or a bad input file
    3  EXIT_NO_DEVICE  no unit found, nothing at --port, or it went away
    4  EXIT_BUSY       the port is busy (another program has it) or permission is denied
    5  EXIT_TREATING   refused: a treatment is running on the unit (nothing was sent)
    6  EXIT_UNIT       the unit did not answer, or the operation failed on it
    7  EXIT_FIRMWARE   wrong or corrupt firmware (bad UF2, wrong family, build or verify failed)
    8  EXIT_CONFIG     invalid configuration (rejected on the host or by the unit)
    9  EXIT_DAMAGED    finished, but damaged records were found (reported; the good ones kept)
    10 EXIT_AMBIGUOUS  several units connected and none chosen (--port)
    11 EXIT_NOT_FOUND  no such session, course or key
"""
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_NO_DEVICE = 3
EXIT_BUSY = 4
EXIT_TREATING = 5
EXIT_UNIT = 6
EXIT_FIRMWARE = 7
EXIT_CONFIG = 8
EXIT_DAMAGED = 9
EXIT_AMBIGUOUS = 10
EXIT_NOT_FOUND = 11

NAMES = {v: k for k, v in globals().items() if k.startswith("EXIT_")}


class IontoError(Exception):
    """A failure with its exit code and one line for the user (what is wrong; what to do)."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
