-- name: ping
SELECT 1;

-- name: customer_count
SELECT count(*) FROM customers;
