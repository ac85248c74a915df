-- A range type over text, so that model_prices can refuse two overlapping periods of one pattern with a GiST
-- exclusion constraint and no extension (btree_gist): the pattern becomes the single-point range [p, p], which
-- overlaps [q, q] exactly when p = q. Core PostgreSQL only.
CREATE TYPE intake_text_range AS RANGE (subtype = text, collation = "C");
