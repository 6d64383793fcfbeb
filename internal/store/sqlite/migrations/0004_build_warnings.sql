-- Warnings found in the build's pipeline file (what Drone tolerates:
-- unknown keys, legacy forms), as a JSON list of "FILE:LINE:COL: warning:
-- message" lines, shown with the build.
ALTER TABLE builds ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]';
