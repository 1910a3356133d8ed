#!/usr/bin/env python3
"""Write a synthetic users.csv: students and staff of one district.

usage: gen_users.py ROWS OUT [--passwords] [--variant N] [--schools N]

--variant changes every row's Last Name (N=0 is the base file), so a variant
file re-imports as "every row updated". --passwords adds a password per row
(the same for every variant, so only the first import hashes them).
"""
import argparse
import random

p = argparse.ArgumentParser()
p.add_argument("rows", type=int)
p.add_argument("out")
p.add_argument("--passwords", action="store_true")
p.add_argument("--variant", type=int, default=0)
p.add_argument("--schools", type=int, default=8)
a = p.parse_args()

rng = random.Random(42)
grades = ["K", "1", "2nd", "3", "4th grade", "5", "6", "Grade 7", "8", "9", "10", "11", "12", "PK"]
with open(a.out, "w", newline="") as f:
    f.write("Username,Password,Email Address,First Name,Last Name,School,Graduation Year,Access Type\r\n")
    for i in range(a.rows):
        staff = i % 20 == 0
        user = f"user{i:07d}@bench-district.example.org"
        pw = f"Pw-{i:07d}-x" if a.passwords else ""
        grade = "" if staff else grades[rng.randrange(len(grades))]
        access = "Manager" if staff and i % 100 == 0 else ""
        school = f"School {i % a.schools}"
        last = f"Last{i}" + (f"-v{a.variant}" if a.variant else "")
        f.write(f"{user},{pw},{user},First{i},\"{last}\",{school},{grade},{access}\r\n")
