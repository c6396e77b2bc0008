"""Drop the page cache of every file below the folders given (POSIX_FADV_DONTNEED).

bench/run.sh calls it on each measurement's outputs once they are kept aside, so that the
memory they held is free, and recently freed, for the next measurement (see run.sh).
"""

import os
import sys

for top in sys.argv[1:]:
    for folder, _, files in os.walk(top):
        for name in files:
            try:
                fd = os.open(os.path.join(folder, name), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
