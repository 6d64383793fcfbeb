-- Blue-green switching (issue 10): whether a node should have a service in
-- its load balancer's rotation; NULL leaves the node in charge (it drains
-- around its own switch), TRUE serving, FALSE kept out.
ALTER TABLE node_desired ADD COLUMN serving BOOLEAN;
