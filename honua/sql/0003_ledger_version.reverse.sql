-- Nothing to undo: dropping the column (the previous operation, reversed) drops the numbers.
SELECT 1;
