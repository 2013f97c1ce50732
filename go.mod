module github.com/permatrix/permatrix

go 1.26
