module github.com/starttls-go/starttls

go 1.26
