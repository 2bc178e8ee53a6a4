-- name: products_by_ids
SELECT id, sku, name, category, price, currency, created_at
  FROM products
 WHERE id = ANY ($1::bigint[]);

-- name: all_products
-- The whole catalogue (the recommender keeps it, refreshed daily, to answer without lookups).
SELECT id, sku, name, category, price, currency, created_at
  FROM products;

-- name: product_by_sku
SELECT id, sku, name, category, price, currency, created_at
  FROM products
 WHERE sku = $1;

-- name: products_page
-- Products by id; $1 optional category, $2 optional name/sku LIKE pattern, $3 the last id
-- seen, $4 the rows to return.
SELECT id, sku, name, category, price, currency, created_at
  FROM products
 WHERE ($1::text IS NULL OR category = $1)
   AND ($2::text IS NULL OR lower(name) LIKE $2 OR lower(sku) LIKE $2)
   AND ($3::bigint IS NULL OR id > $3)
 ORDER BY id
 LIMIT $4;

-- name: products_count
SELECT count(*)
  FROM products
 WHERE ($1::text IS NULL OR category = $1)
   AND ($2::text IS NULL OR lower(name) LIKE $2 OR lower(sku) LIKE $2);

-- name: products_count_all
-- The whole catalogue's size from the counter migration 0012 keeps (no scan).
SELECT coalesce(sum(delta), 0)::bigint AS count
  FROM count_deltas
 WHERE counter = 'products' AND key = '';
