"""Step 19: arrival with a household code (shelter/domain/household_code.py).

A household registered from a code keeps when that code was made (``code_made``; NULL for
one registered on the form) and its pets; each person their medication and their number
in the code (``code_seq``), from which their person id was derived.
"""

from __future__ import annotations

from sqlite_utils import Database


def m019_household_codes(db: Database) -> None:
    db.execute("ALTER TABLE households ADD COLUMN code_made TEXT")
    db.execute("ALTER TABLE households ADD COLUMN pets TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE persons ADD COLUMN medication TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE persons ADD COLUMN code_seq INTEGER")
