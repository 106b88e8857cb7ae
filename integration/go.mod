module github.com/cloudtokens/cloudtokens/integration

go 1.26.0

require github.com/cloudtokens/cloudtokens v0.0.0-00010101000000-000000000000

replace github.com/cloudtokens/cloudtokens => ../
