-- Reverse of 0038_rollup_marks.sql (the migration's trigger operations restore the statement trigger first).

DROP FUNCTION IF EXISTS build_results_rollup_mark_row();
