-- Blue-green switching (issue 10): whether a node should have a service in
-- its load balancer's rotation; NULL leaves the node in charge (it drains
-- around its own switch), 1 serving, 0 kept out.
ALTER TABLE node_desired ADD COLUMN serving INTEGER;
