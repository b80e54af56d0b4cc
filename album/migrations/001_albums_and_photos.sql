-- Albums and their photos: one row per photo, upserted by id by the workflow's steps.
-- The sample's columns (id, album, labels, thumbnail, creation time, GPS D/M/S, make, model, size,
-- format), plus what it lacked: the upload time, a status every workflow ends with, the error of a
-- failed one, the people pose-json found, and the Temporal run that processed the photo.

CREATE TABLE albums (
    id          text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE photos (
    id                  text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),  -- also the workflow id
    album_id            text NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
    file_name           text,                -- as uploaded: shown, never used to build a key
    content_type        text NOT NULL,       -- sniffed from the bytes at upload
    original_key        text NOT NULL,
    upload_time         timestamptz NOT NULL DEFAULT now(),
    status              text NOT NULL DEFAULT 'RUNNING' CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    error               text,
    run_id              text,
    labels              jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{"label", "accuracy"}], best first
    thumbnail_key       text,
    thumbnail_width     integer,
    thumbnail_height    integer,
    creation_time       text,                -- EXIF DateTimeOriginal, ISO 8601 as the camera wrote it
    latitude_degrees    smallint,
    latitude_minutes    smallint,
    latitude_seconds    double precision,
    latitude_direction  char(1) CHECK (latitude_direction IN ('N', 'S')),
    longitude_degrees   smallint,
    longitude_minutes   smallint,
    longitude_seconds   double precision,
    longitude_direction char(1) CHECK (longitude_direction IN ('E', 'W')),
    make                text,
    model               text,
    width               integer,
    height              integer,
    file_size           bigint,
    format              text,
    people_count        integer,
    people              jsonb,               -- pose-json's boxes and 17 keypoints per person
    timings             jsonb,               -- milliseconds per step, as the workflow saw them
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- An album's page: newest first, paged by (upload_time, id).
CREATE INDEX photos_by_album ON photos (album_id, upload_time DESC, id DESC);
