-- the darkest ten photos that still exist
SELECT path, round(CAST(ev AS numeric), 2) AS ev FROM images WHERE missing_since IS NULL ORDER BY ev LIMIT 10;

-- byte-identical copies (of files still on disk): how many, and the first and last path
SELECT sha256, count(*) AS copies, min(path) AS first_path, max(path) AS last_path
FROM images WHERE missing_since IS NULL GROUP BY sha256 HAVING count(*) > 1;

-- pairs whose pHashes differ in at most 6 bits (brute force: fine for a few thousand rows)
SELECT a.path, b.path, hamming(a.phash, b.phash) AS d
FROM images a JOIN images b ON a.id < b.id WHERE hamming(a.phash, b.phash) <= 6;

-- photos per camera body
SELECT c.make, c.model, c.serial, count(*) AS photos
FROM images i JOIN cameras c ON c.id = i.camera_id GROUP BY c.id ORDER BY photos DESC;

-- shots taken within the same second (bursts), by camera; byte-identical backups count once
SELECT camera_id, substr(CAST(captured_at AS text), 1, 19) AS second, count(DISTINCT sha256) AS n
FROM images WHERE captured_at IS NOT NULL AND missing_since IS NULL GROUP BY 1, 2
HAVING count(DISTINCT sha256) > 1;

-- blurry candidates: least sharp tenth
SELECT path, round(sharpness) FROM images ORDER BY sharpness LIMIT (SELECT count(*) / 10 FROM images);

-- what failed, and why
SELECT kind, count(*) AS n, min(message) AS example FROM failures GROUP BY kind;

-- every duplicate group with its keeper first
SELECT g.group_id, g.is_keeper, i.path FROM image_groups g JOIN images i ON i.id = g.image_id
ORDER BY g.group_id, g.is_keeper DESC, i.path;

-- exposure variants whose measured offset disagrees with EXIF by more than 1/2 stop
SELECT a.path, b.path, round(CAST(p.delta_ev AS numeric), 2) AS measured,
       round(CAST(p.delta_ev_exif AS numeric), 2) AS exif
FROM pairs p JOIN images a ON a.id = p.a_id JOIN images b ON b.id = p.b_id
WHERE p.verdict = 'exposure_variant' AND abs(p.delta_ev - p.delta_ev_exif) > 0.5;

-- flagged images, worst first
SELECT i.path, f.name, round(CAST(f.value AS numeric), 3) AS value, f.threshold
FROM image_flags f JOIN images i ON i.id = f.image_id ORDER BY f.name, f.value;

-- hot pixels of every camera body seen in at least 20 frames
SELECT make, model, serial, x, y, rate FROM defects WHERE kind = 'hot' AND sensor_frames >= 20;
